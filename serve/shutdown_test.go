package serve

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

// selfSigned returns a TLS configuration with a fresh self-signed
// certificate for 127.0.0.1, and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cl test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// TestServeTLSAndDrain runs Serve over TLS, holds a learn in flight (its
// images wait in a stalled batcher), cancels the server's context (as
// SIGTERM does) and checks that the in-flight request is answered before
// Serve returns, that new connections are refused meanwhile, and that the
// change is in the snapshot Serve wrote.
func TestServeTLSAndDrain(t *testing.T) {
	bb, bbi := tinyBackbone(t)
	dir := t.TempDir()
	s, err := New(Config{StateDir: dir, Token: testToken}, bb, bbi, newHead(t, "simplecil"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, pool := selfSigned(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l, tlsCfg) }()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + l.Addr().String()

	// Plain HTTP on the TLS port fails; HTTPS works.
	if resp, err := http.Get("http://" + l.Addr().String() + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("plain HTTP served on the TLS listener")
	}
	resp, err := client.Get(url + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz over TLS: %v %v", resp, err)
	}
	resp.Body.Close()

	// Stall the batcher so that an image learn stays in flight.
	running := s.b
	stalled := newBatcher(bb, s.dec.pp.Len(), 4, time.Millisecond, 16, 0, nil)
	s.b = stalled
	img := tinyImages(t)[0]
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/learn?id=drain&class=c", bytes.NewReader(img.data))
		req.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := client.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	for stalled.depth() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop() // SIGTERM
	for s.ready.Load() {
		time.Sleep(time.Millisecond)
	}
	select {
	case code := <-answered:
		t.Fatalf("the in-flight learn was answered (%d) before its images ran", code)
	case err := <-served:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	// Let the stalled images run: a worker on the same queue.
	stalled.wg.Add(1)
	go stalled.worker()
	if code := <-answered; code != 200 {
		t.Fatalf("in-flight learn answered %d during the drain, want 200", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	running.close() // (Close stopped the stalled one, which was s.b)

	// Restart: the drained learn is in the snapshot, nothing to replay.
	s2, err := New(Config{StateDir: dir, Token: testToken}, bb, bbi, newHead(t, "simplecil"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if rec := s2.Recovered(); rec.Replayed != 0 || rec.SnapshotSeq != 1 {
		t.Fatalf("after the drain: %+v, want the snapshot at 1 and nothing to replay", rec)
	}
	var m modelReply
	rec := httpGet(t, s2, "/v1/model")
	json.Unmarshal(rec, &m)
	if m.Samples != 1 || m.Classes != 1 {
		t.Fatalf("after restart: %s", rec)
	}
}

func httpGet(t *testing.T, s *Server, path string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", path, nil)
	w := &recorder{h: http.Header{}}
	s.Handler().ServeHTTP(w, req)
	return w.b.Bytes()
}

type recorder struct {
	h    http.Header
	b    bytes.Buffer
	code int
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.b.Write(b) }
func (r *recorder) WriteHeader(c int)           { r.code = c }

// TestConcurrencyLimit: with MaxConcurrent requests in progress, another
// gets 503 busy with Retry-After; health checks are not limited.
func TestConcurrencyLimit(t *testing.T) {
	ts := startServer(t, t.TempDir(), Config{MaxConcurrent: 1}, newHead(t, "simplecil"))
	stalled := newBatcher(ts.bb, ts.s.dec.pp.Len(), 1, time.Millisecond, 8, 0, nil)
	running := ts.s.b
	ts.s.b = stalled
	img := tinyImages(t)[0]
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.ts.URL+"/v1/predict", bytes.NewReader(img.data))
		req.Header.Set("Content-Type", "image/jpeg")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	for stalled.depth() == 0 {
		time.Sleep(time.Millisecond)
	}
	r := ts.get("/v1/classes")
	if r.code != 503 || r.errCode() != "busy" || r.hdr.Get("Retry-After") == "" {
		t.Fatalf("over the concurrency limit: %d %s", r.code, r.body)
	}
	must(t, ts.get("/healthz"), 200)
	must(t, ts.get("/metrics"), 200)
	cancel()
	<-done
	ts.s.b = running
}
