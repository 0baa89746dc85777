// Command hello-go is the example app for pier's Go buildpack: a web
// server on $PORT, standard library only.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "<!doctype html>\n<title>hello-go</title>\n<h1>Hello from Go</h1>\n<p>dyno %s</p>\n", os.Getenv("DYNO"))
	})
	log.Printf("listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
