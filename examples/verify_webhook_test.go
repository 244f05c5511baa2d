package continuumwebhooks

// go test -v ./...   (in examples/)
//
// Every positive vector of ../docs/test-vectors.json must verify (either secret of a rotation,
// each header family alone and both together) and every negative one must be refused with its
// reason, directly and through the net/http Handler. TestMain prints the vectors counted.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type positiveVector struct {
	Name           string            `json:"name"`
	Secret         string            `json:"secret"`
	PreviousSecret string            `json:"previous_secret"`
	Timestamp      int64             `json:"timestamp"`
	Now            int64             `json:"now"`
	DeliveryID     string            `json:"delivery_id"`
	Payload        json.RawMessage   `json:"payload"`
	Body           string            `json:"body"`
	Headers        map[string]string `json:"headers"`
}

type negativeVector struct {
	Name    string            `json:"name"`
	Family  string            `json:"family"`
	Secret  string            `json:"secret"`
	Now     int64             `json:"now"`
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
	Reason  Reason            `json:"reason"`
}

var vectors struct {
	Positive []positiveVector `json:"positive"`
	Negative []negativeVector `json:"negative"`
}

var acceptedCount, rejectedCount int64

func TestMain(m *testing.M) {
	raw, err := os.ReadFile("../docs/test-vectors.json")
	if err != nil {
		fmt.Println("cannot read the test vectors:", err)
		os.Exit(1)
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		fmt.Println("cannot parse the test vectors:", err)
		os.Exit(1)
	}
	code := m.Run()
	fmt.Printf("continuum test vectors [go]: %d positive accepted, %d negative rejected\n",
		atomic.LoadInt64(&acceptedCount), atomic.LoadInt64(&rejectedCount))
	os.Exit(code)
}

var standardNames = []string{"webhook-id", "webhook-timestamp", "webhook-signature"}
var continuumNames = []string{"x-continuum-timestamp", "x-continuum-signature"}

// httpHeader builds an http.Header from a vector, leaving out the named headers.
func httpHeader(from map[string]string, drop []string) http.Header {
	h := http.Header{}
	for k, v := range from {
		skip := false
		for _, d := range drop {
			skip = skip || strings.EqualFold(k, d)
		}
		if !skip {
			h.Add(k, v)
		}
	}
	return h
}

func at(unix int64) func() time.Time { return func() time.Time { return time.Unix(unix, 0) } }

// sameEvent compares what Verify returned with the vector's payload, decoded as generic JSON.
func sameEvent(t *testing.T, got *Event, want json.RawMessage) {
	t.Helper()
	var expected map[string]interface{}
	if err := json.Unmarshal(want, &expected); err != nil {
		t.Fatal(err)
	}
	var data interface{}
	if err := json.Unmarshal(got.Data, &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	created, _ := time.Parse(time.RFC3339Nano, expected["created_at"].(string))
	if got.ID != expected["id"] || got.Event != expected["event"] || got.UserID != expected["user_id"] ||
		!got.CreatedAt.Equal(created) || !reflect.DeepEqual(data, expected["data"]) {
		t.Fatalf("parsed event differs:\n got %+v (data %v)\nwant %s", got, data, want)
	}
}

func reasonOf(err error) Reason {
	var refused *VerificationError
	if errors.As(err, &refused) {
		return refused.Reason
	}
	if err != nil {
		return Reason("error: " + err.Error())
	}
	return "accepted"
}

func TestAcceptsEveryPositiveVector(t *testing.T) {
	for _, v := range vectors.Positive {
		v := v
		t.Run(v.Name, func(t *testing.T) {
			secrets := []string{v.Secret}
			if v.PreviousSecret != "" {
				secrets = append(secrets, v.PreviousSecret)
			}
			for _, secret := range secrets {
				for _, drop := range [][]string{standardNames, continuumNames, nil} {
					verifier := &Verifier{Secrets: []string{secret}, Now: at(v.Now)}
					event, err := verifier.Verify(httpHeader(v.Headers, drop), []byte(v.Body))
					if err != nil {
						t.Fatalf("secret %.10s, without %v: %v", secret, drop, err)
					}
					sameEvent(t, event, v.Payload)
				}
			}
			// The receiver's own rotation: several secrets, one right.
			other := "whsec_" + strings.Repeat("A", 43) + "="
			verifier := &Verifier{Secrets: []string{other, v.Secret}, Now: at(v.Now)}
			if _, err := verifier.Verify(httpHeader(v.Headers, nil), []byte(v.Body)); err != nil {
				t.Fatal(err)
			}
			atomic.AddInt64(&acceptedCount, 1)
		})
	}
}

func TestRejectsEveryNegativeVectorWithItsReason(t *testing.T) {
	for _, v := range vectors.Negative {
		v := v
		t.Run(v.Name, func(t *testing.T) {
			verifier := &Verifier{Secrets: []string{v.Secret}, Now: at(v.Now)}
			_, err := verifier.Verify(httpHeader(v.Headers, nil), []byte(v.Body))
			if got := reasonOf(err); got != v.Reason {
				t.Fatalf("reason %q, want %q", got, v.Reason)
			}
			atomic.AddInt64(&rejectedCount, 1)
		})
	}
}

func TestRefusesAnEmptyOrUndecodableSecret(t *testing.T) {
	v := vectors.Positive[0]
	for _, secrets := range [][]string{nil, {""}, {"whsec_!!!"}} {
		verifier := &Verifier{Secrets: secrets, Now: at(v.Now)}
		_, err := verifier.Verify(httpHeader(v.Headers, nil), []byte(v.Body))
		var refused *VerificationError
		if err == nil || errors.As(err, &refused) {
			t.Fatalf("secrets %q: want a configuration error, got %v", secrets, err)
		}
	}
}

func TestCountsBothValuesOfAHeaderSentTwice(t *testing.T) {
	v := vectors.Positive[0]
	h := httpHeader(v.Headers, []string{"webhook-signature"})
	h.Add("webhook-signature", "v1,AAAA")
	h.Add("webhook-signature", v.Headers["webhook-signature"])
	if _, err := (&Verifier{Secrets: []string{v.Secret}, Now: at(v.Now)}).Verify(h, []byte(v.Body)); err != nil {
		t.Fatal(err)
	}
}

func TestDeduplicator(t *testing.T) {
	now := time.Unix(0, 0)
	d := &Deduplicator{TTL: 10 * time.Second, MaxEntries: 2, Now: func() time.Time { return now }}
	check := func(id string, want bool) {
		t.Helper()
		if got := d.Claim(id); got != want {
			t.Fatalf("Claim(%q) = %v, want %v", id, got, want)
		}
	}
	check("a", true)
	check("a", false)
	d.Release("a")
	check("a", true)
	check("b", true)
	check("c", true) // full: "a" is forgotten
	check("c", false)
	check("a", true)
	now = now.Add(10 * time.Second) // everything expired
	check("c", true)
}

// handlerFor returns a Handler at the vector's time, recording the events it processes.
func handlerFor(secret string, now int64, events *[]string, fail *bool) *Handler {
	var mu sync.Mutex
	return &Handler{
		Verifier: &Verifier{Secrets: []string{secret}, Now: at(now)},
		Dedupe:   NewDeduplicator(24 * time.Hour),
		OnEvent: func(_ context.Context, id string, ev *Event) error {
			mu.Lock()
			defer mu.Unlock()
			if fail != nil && *fail {
				*fail = false
				return errors.New("handler failed")
			}
			*events = append(*events, id+" "+ev.Event)
			return nil
		},
	}
}

func serve(h http.Handler, headers map[string]string, body string) (int, map[string]string) {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/continuum", strings.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestHandlerWithEveryVector(t *testing.T) {
	for _, v := range vectors.Positive {
		var events []string
		code, out := serve(handlerFor(v.Secret, v.Now, &events, nil), v.Headers, v.Body)
		var payload struct{ Event string }
		_ = json.Unmarshal(v.Payload, &payload)
		if code != 200 || out["status"] != "ok" || len(events) != 1 || events[0] != v.DeliveryID+" "+payload.Event {
			t.Errorf("%s: %d %v %v", v.Name, code, out, events)
		}
	}
	for _, v := range vectors.Negative {
		var events []string
		code, out := serve(handlerFor(v.Secret, v.Now, &events, nil), v.Headers, v.Body)
		if code != 400 || Reason(out["reason"]) != v.Reason || len(events) != 0 {
			t.Errorf("%s: %d %v, want 400 %s", v.Name, code, out, v.Reason)
		}
	}
}

func TestHandlerOverLoopbackDeduplicatesAndRetriesAfterAFailure(t *testing.T) {
	v := vectors.Positive[0]
	var events []string
	fail := false
	server := httptest.NewServer(handlerFor(v.Secret, v.Now, &events, &fail))
	defer server.Close()

	post := func(headers map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, server.URL+"/webhooks/continuum", bytes.NewReader([]byte(v.Body)))
		for k, val := range headers {
			req.Header.Set(k, val)
		}
		res, err := server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]string
		raw, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(raw, &out)
		return res.StatusCode, out["status"] + out["error"]
	}

	log.SetOutput(io.Discard) // the failing handler is logged; keep the test output clean
	defer log.SetOutput(os.Stderr)
	fail = true
	if code, status := post(v.Headers); code != 500 || status != "handler_failed" {
		t.Fatalf("failing handler: %d %s", code, status)
	}
	if code, status := post(v.Headers); code != 200 || status != "ok" {
		t.Fatalf("retry after a failure: %d %s", code, status)
	}
	continuumOnly := map[string]string{}
	for k, val := range v.Headers {
		if !strings.HasPrefix(strings.ToLower(k), "webhook-") {
			continuumOnly[k] = val
		}
	}
	if code, status := post(continuumOnly); code != 200 || status != "duplicate" {
		t.Fatalf("second delivery of the same id: %d %s", code, status)
	}
	if len(events) != 1 {
		t.Fatalf("processed %d times: %v", len(events), events)
	}
	res, err := server.Client().Get(server.URL + "/webhooks/continuum")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", res.StatusCode)
	}
}
