// A web server on $PORT. Its one dependency, installed by npm from the
// registry during the build, shows that the build's npm works.
const http = require("http");
const fs = require("fs");
const escapeHtml = require("escape-html");

const greeting = fs.readFileSync(__dirname + "/dist/greeting.txt", "utf8").trim();
const port = process.env.PORT || 5000;
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!doctype html>\n<title>hello-node</title>\n<h1>${escapeHtml(greeting)}</h1>\n`);
  })
  .listen(port, () => console.log(`listening on :${port}`));
