package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// RecordedWebhook is one delivery that passed through a WebhookRecorder:
// the exact request Partner Center sent and what ingress answered.
type RecordedWebhook struct {
	Header   http.Header
	Body     []byte
	Target   string // the ingress URL it was forwarded to
	Status   int    // ingress's answer (502 when ingress could not be reached)
	Response string // ingress's answer body
	At       time.Time
}

// WebhookRecorder is a transparent recording proxy between the Partner
// Center emulator and ingress. Register its URL as the webhook (via
// Config.ExtraEnv PC_WEBHOOK_URL) and SetTarget to the ingress webhook once
// the stack runs; tests can then replay a captured delivery byte for byte,
// exactly as Partner Center (or an attacker) would send it again.
type WebhookRecorder struct {
	URL string // the webhook URL to register

	srv     *http.Server
	client  *http.Client
	mu      sync.Mutex
	targets []string
	next    int
	got     []RecordedWebhook
}

// StartWebhookRecorder listens on a free loopback port.
func StartWebhookRecorder() (*WebhookRecorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &WebhookRecorder{URL: "http://" + ln.Addr().String() + "/webhooks/partnercenter", client: newHTTPClient()}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// SetTarget sets the ingress webhook URLs deliveries are forwarded to;
// with several (one per ingress replica) it balances round-robin, as a
// load balancer in front of the replicas would.
func (r *WebhookRecorder) SetTarget(urls ...string) {
	r.mu.Lock()
	r.targets = append([]string(nil), urls...)
	r.mu.Unlock()
}

// Close stops the proxy.
func (r *WebhookRecorder) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.srv.Shutdown(ctx)
}

// Recorded returns every delivery seen so far, oldest first.
func (r *WebhookRecorder) Recorded() []RecordedWebhook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RecordedWebhook(nil), r.got...)
}

func (r *WebhookRecorder) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := RecordedWebhook{Header: req.Header.Clone(), Body: body, At: time.Now()}
	rec.Target, rec.Status, rec.Response, err = r.forward(req.Context(), rec.Header, body)
	if err != nil {
		rec.Status, rec.Response = http.StatusBadGateway, err.Error()
	}
	r.mu.Lock()
	r.got = append(r.got, rec)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Status)
	_, _ = io.WriteString(w, rec.Response)
}

func (r *WebhookRecorder) forward(ctx context.Context, hdr http.Header, body []byte) (target string, status int, answer string, err error) {
	r.mu.Lock()
	if len(r.targets) > 0 {
		target = r.targets[r.next%len(r.targets)]
		r.next++
	}
	r.mu.Unlock()
	if target == "" {
		return "", 0, "", fmt.Errorf("webhook recorder has no target yet")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return target, 0, "", err
	}
	for k, v := range hdr {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Accept-Encoding", "Traceparent", "Tracestate":
			continue
		}
		req.Header[k] = append([]string(nil), v...)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return target, 0, "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return target, resp.StatusCode, string(out), err
}

// Replay sends a recorded delivery to ingress again, byte for byte, and
// returns ingress's status and body. The replay is recorded too.
func (r *WebhookRecorder) Replay(ctx context.Context, rec RecordedWebhook) (int, string, error) {
	target, status, body, err := r.forward(ctx, rec.Header, rec.Body)
	if err == nil {
		r.mu.Lock()
		r.got = append(r.got, RecordedWebhook{Header: rec.Header.Clone(), Body: rec.Body, Target: target, Status: status, Response: body, At: time.Now()})
		r.mu.Unlock()
	}
	return status, body, err
}
