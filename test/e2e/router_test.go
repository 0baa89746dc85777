package e2e

import "fmt"

// routerHTTPPort is the routers' HTTP port, in their own namespaces.
const routerHTTPPort = 8080

func routerAddr(n *node) string { return fmt.Sprintf("%s:%d", n.ip, routerHTTPPort) }
