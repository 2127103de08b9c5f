package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"time"
)

// predict posts one image to url's /v1/predict and times it: the latency
// (from the call until the body is read), the wire time (from the request
// written to the first byte of the reply: the server's whole share,
// including net/http before and after the handler and the kernel) and the
// server's Server-Timing phases.
func predict(client *http.Client, url string, im encoded) (timedRequest, error) {
	var wrote, first time.Time
	trace := &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
		GotFirstResponseByte: func() { first = time.Now() },
	}
	req, err := http.NewRequest("POST", url+"/v1/predict?top=1", bytes.NewReader(im.body))
	if err != nil {
		return timedRequest{}, err
	}
	req.Header.Set("Content-Type", im.ctype)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return timedRequest{}, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	el := time.Since(t0)
	if resp.StatusCode != 200 {
		return timedRequest{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	tr := parseServerTiming(resp.Header.Get("Server-Timing"))
	tr.latency = el
	if !wrote.IsZero() && first.After(wrote) {
		tr.wire = first.Sub(wrote)
	}
	return tr, nil
}
