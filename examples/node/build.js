// The build script the buildpack runs (npm run build): it writes the
// greeting the server shows, so a page that shows it proves the build ran.
const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/greeting.txt", "Hello from Node.js\n");
console.log("wrote dist/greeting.txt");
