// Package backupjob is what a backup or restore job runs (`pier
// backup-job`): the datastore's own dump or restore program, its output
// streamed to the controller or its input streamed from it, over the
// job's own endpoint (api.BackupEnvURL) with the job's token, trusting
// only the cluster's CA. The dump never touches the job's disk, so a
// backup as large as the database needs no room on the host.
package backupjob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/pierpaas/pier/api"
	"github.com/pierpaas/pier/internal/pki"
)

// endpoint is the job's endpoint on the controller.
type endpoint struct {
	base, token string
	hc          *http.Client
}

func newEndpoint(env func(string) string) (*endpoint, error) {
	base, token := strings.TrimRight(env(api.BackupEnvURL), "/"), env(api.BackupEnvToken)
	if base == "" || token == "" {
		return nil, fmt.Errorf("backup-job: %s and %s must be set: this command runs as a job the controller starts", api.BackupEnvURL, api.BackupEnvToken)
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("backup-job: %s=%q is not an http(s) URL", api.BackupEnvURL, base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if pem := env(api.BackupEnvCA); pem != "" {
		if tr, err = pki.ControlPlaneTransport(pem, env(api.EnvAPIRelay)); err != nil {
			return nil, fmt.Errorf("backup-job: %s: %w", api.BackupEnvCA, err)
		}
	} else if u.Scheme == "https" {
		return nil, fmt.Errorf("backup-job: %s is not set: cannot verify the controller at %s", api.BackupEnvCA, base)
	}
	return &endpoint{base: base, token: token, hc: &http.Client{Transport: tr}}, nil
}

func (e *endpoint) do(ctx context.Context, method, path string, body io.Reader, ctype string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.base+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		msg := strings.TrimSpace(string(b))
		var ae api.Error
		if json.Unmarshal(b, &ae) == nil && ae.Message != "" {
			msg = ae.Message
		}
		return nil, fmt.Errorf("%s %s: %s (%s)", method, path, msg, resp.Status)
	}
	return resp, nil
}

// tail keeps the last bytes a program wrote to stderr, for the error a
// failed dump reports, while passing everything on to the job's log.
type tail struct {
	out io.Writer
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return t.out.Write(p)
}

func (t *tail) String() string { return strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, nil))) }

// Capture runs args, streaming its stdout to the controller as the dump.
// If the program fails the upload is cut short, so the controller keeps
// nothing, and the job reports why.
func Capture(ctx context.Context, env func(string) string, args []string) error {
	e, err := newEndpoint(env)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("backup-job capture: no command")
	}
	pr, pw := io.Pipe()
	stderr := &tail{out: os.Stderr}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = pw, stderr
	if err := cmd.Start(); err != nil {
		return e.fail(ctx, fmt.Errorf("start %s: %w", args[0], err))
	}
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%s: %v: %s", args[0], err, stderr)
		}
		pw.CloseWithError(err) // nil: EOF, the dump is whole
	}()
	resp, err := e.do(ctx, http.MethodPut, "/dump", pr, "application/octet-stream")
	if err != nil {
		pr.CloseWithError(err)
		cmd.Wait()
		return e.fail(ctx, err)
	}
	resp.Body.Close()
	fmt.Fprintln(os.Stderr, "pier: backup stored")
	return nil
}

func (e *endpoint) fail(ctx context.Context, cause error) error {
	b, _ := json.Marshal(api.BackupJobResult{Error: cause.Error()})
	if resp, err := e.do(ctx, http.MethodPost, "/result", bytes.NewReader(b), "application/json"); err == nil {
		resp.Body.Close()
	}
	return cause
}

// Restore streams the dump from the controller into args' stdin.
func Restore(ctx context.Context, env func(string) string, args []string) error {
	e, err := newEndpoint(env)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("backup-job restore: no command")
	}
	resp, err := e.do(ctx, http.MethodGet, "/dump", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = resp.Body, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	fmt.Fprintln(os.Stderr, "pier: restore complete")
	return nil
}
