// Command postgres is a small app that keeps notes in the PostgreSQL
// database its DATABASE_URL names (pier resources:add postgres -a APP):
// GET /add?note=TEXT stores one, GET / lists them, oldest first. Until the
// app is attached it answers 503, so it can be deployed before its
// database exists, as on Heroku.
//
//	CGO_ENABLED=0 go build -o notes ./examples/postgres
//	echo 'web: ./notes' > Procfile
//	pier deploy --no-build -a notes .
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	var pool *pgxpool.Pool
	if url := os.Getenv("DATABASE_URL"); url != "" {
		var err error
		if pool, err = pgxpool.New(context.Background(), url); err != nil {
			log.Fatalf("DATABASE_URL: %v", err)
		}
		// The table is made by the first request that finds it missing,
		// so a database still starting does not stop the app starting.
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if pool == nil {
			http.Error(w, "no DATABASE_URL: attach a database (pier resources:add postgres -a APP)", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/add" {
			var id int
			if err := pool.QueryRow(ctx, `INSERT INTO notes (body) VALUES ($1) RETURNING id`, r.URL.Query().Get("note")).Scan(&id); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintf(w, "stored %d\n", id)
			return
		}
		rows, err := pool.Query(ctx, `SELECT body FROM notes ORDER BY id`)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		var notes []string
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			notes = append(notes, b)
		}
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	})
	log.Printf("listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
