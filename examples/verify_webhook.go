// Package continuumwebhooks verifies CONTINUUM webhook deliveries in Go, standard library only,
// and provides a net/http handler that verifies, de-duplicates and dispatches them.
//
// Every delivery carries two signature header families; checking either one is enough:
//
//   - X-Continuum-Signature: hex HMAC-SHA256 of "{timestamp}.{body}", keyed by the whole secret
//     string ("whsec_" included), with X-Continuum-Timestamp.
//   - Standard Webhooks: webhook-signature is "v1,<base64 HMAC-SHA256 of {webhook-id}.{webhook-timestamp}.{body}>",
//     keyed by the base64-decoded part of the secret after "whsec_".
//
// During a secret rotation each header carries one signature per secret, space-separated.
//
// Usage:
//
//	verifier := &continuumwebhooks.Verifier{Secrets: []string{os.Getenv("CONTINUUM_WEBHOOK_SECRET")}}
//	http.Handle("/webhooks/continuum", &continuumwebhooks.Handler{
//		Verifier: verifier,
//		Dedupe:   continuumwebhooks.NewDeduplicator(24 * time.Hour),
//		OnEvent: func(ctx context.Context, deliveryID string, ev *continuumwebhooks.Event) error {
//			log.Printf("%s %s", ev.Event, ev.Data)
//			return nil // an error answers 500, and CONTINUUM retries
//		},
//	})
package continuumwebhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTolerance is how far a delivery's timestamp may be from now, in the past or the future.
// A captured request can be replayed only within this window, and the timestamp is signed, so it
// cannot be refreshed. Five minutes absorbs clock skew and slow networks.
const DefaultTolerance = 5 * time.Minute

// Reason says which check refused a delivery.
type Reason string

const (
	// ReasonMissingHeader: no signature header, or its family lacks the id/timestamp header.
	ReasonMissingHeader Reason = "missing_header"
	// ReasonMalformed: timestamp not unix seconds, signature in the wrong shape, body not JSON.
	ReasonMalformed Reason = "malformed"
	// ReasonExpired: the timestamp is outside the tolerance, in the past or the future.
	ReasonExpired Reason = "expired"
	// ReasonBadSignature: no signature matches any of the secrets.
	ReasonBadSignature Reason = "bad_signature"
)

// VerificationError is returned for a delivery that must be refused (answer 400).
type VerificationError struct {
	Reason  Reason
	Message string
}

func (e *VerificationError) Error() string { return string(e.Reason) + ": " + e.Message }

func refuse(reason Reason, format string, args ...interface{}) error {
	return &VerificationError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Event is the envelope every delivery carries; Data's fields depend on Event (see docs/EVENTS.md).
type Event struct {
	ID        string          `json:"id"` // evt_…: shared by all deliveries of one event
	Event     string          `json:"event"`
	CreatedAt time.Time       `json:"created_at"`
	UserID    string          `json:"user_id"`
	Data      json.RawMessage `json:"data"`
}

// Verifier checks deliveries against one or more secrets.
type Verifier struct {
	// Secrets: the webhook's secret, or several while you rotate on your side.
	Secrets []string
	// Tolerance: zero means DefaultTolerance.
	Tolerance time.Duration
	// Now: the clock, for tests; nil means time.Now.
	Now func() time.Time
}

var (
	timestampPattern = regexp.MustCompile(`^[0-9]{1,15}$`)
	hexPattern       = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
)

// header reads a header in any case; a header sent twice counts with both values.
func header(h http.Header, name string) (string, bool) {
	value := strings.Join(h.Values(name), " ")
	return value, value != ""
}

func standardKey(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		// Never fall back to an empty key: anyone could compute that HMAC.
		return nil, errors.New("continuumwebhooks: the secret must be 'whsec_' followed by base64")
	}
	return key, nil
}

// Verify checks one delivery and returns its parsed payload. body must be the raw request body
// exactly as received: never a re-encoded copy of a decoded struct, whose bytes may differ.
//
// A refused delivery returns a *VerificationError. Checks run in this order: missing_header,
// malformed, expired, bad_signature. A configuration mistake (no secret) returns another error.
func (v *Verifier) Verify(h http.Header, body []byte) (*Event, error) {
	if len(v.Secrets) == 0 {
		return nil, errors.New("continuumwebhooks: Verifier needs at least one secret")
	}
	for _, s := range v.Secrets {
		if s == "" {
			return nil, errors.New("continuumwebhooks: empty secret")
		}
	}

	// 1. Headers present. The Standard Webhooks family is used when its signature is there.
	signatureHeader, standard := header(h, "webhook-signature")
	if !standard {
		var ok bool
		if signatureHeader, ok = header(h, "X-Continuum-Signature"); !ok {
			return nil, refuse(ReasonMissingHeader, "no webhook-signature or X-Continuum-Signature header")
		}
	}
	id, hasID := header(h, "webhook-id")
	if standard && !hasID {
		return nil, refuse(ReasonMissingHeader, "missing webhook-id header")
	}
	timestampName := "X-Continuum-Timestamp"
	if standard {
		timestampName = "webhook-timestamp"
	}
	timestamp, ok := header(h, timestampName)
	if !ok {
		return nil, refuse(ReasonMissingHeader, "missing %s header", timestampName)
	}

	// 2. Well-formed.
	if !timestampPattern.MatchString(timestamp) {
		return nil, refuse(ReasonMalformed, "timestamp header is not unix seconds")
	}
	tokens := strings.Fields(signatureHeader)
	if len(tokens) == 0 {
		return nil, refuse(ReasonMalformed, "empty signature header")
	}
	var candidates []string
	for _, token := range tokens {
		token = strings.TrimSuffix(token, ",") // "v1,a, v1,b": a comma-joined duplicate header
		if standard {
			comma := strings.IndexByte(token, ',')
			if comma <= 0 || comma == len(token)-1 {
				return nil, refuse(ReasonMalformed, "webhook-signature is not 'v1,<base64>'")
			}
			// Other versions (v1a: asymmetric) are skipped, as the Standard Webhooks spec asks.
			if token[:comma] == "v1" {
				candidates = append(candidates, token[comma+1:])
			}
		} else if hexPattern.MatchString(token) {
			candidates = append(candidates, strings.ToLower(token))
		} else {
			return nil, refuse(ReasonMalformed, "X-Continuum-Signature is not hex HMAC-SHA256")
		}
	}

	// 3. Inside the replay window, both directions; exactly Tolerance away still passes.
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tolerance := v.Tolerance
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	sent, _ := strconv.ParseInt(timestamp, 10, 64)
	age := now().Unix() - sent
	if age > int64(tolerance/time.Second) {
		return nil, refuse(ReasonExpired, "timestamp is %d s old", age)
	}
	if -age > int64(tolerance/time.Second) {
		return nil, refuse(ReasonExpired, "timestamp is %d s in the future", -age)
	}

	// 4. Signature. hmac.Equal takes the same time wherever two signatures differ, so response
	// times reveal nothing about how close a forgery came. No early exit across candidates.
	matched := false
	for _, secret := range v.Secrets {
		var expected string
		if standard {
			key, err := standardKey(secret)
			if err != nil {
				return nil, err
			}
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(id + "." + timestamp + "."))
			mac.Write(body)
			expected = base64.StdEncoding.EncodeToString(mac.Sum(nil))
		} else {
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write([]byte(timestamp + "."))
			mac.Write(body)
			expected = hex.EncodeToString(mac.Sum(nil))
		}
		for _, candidate := range candidates {
			if hmac.Equal([]byte(candidate), []byte(expected)) {
				matched = true
			}
		}
	}
	if !matched {
		return nil, refuse(ReasonBadSignature, "no signature matches the secret")
	}

	// Only now is the body trusted enough to parse.
	var event Event
	if err := json.Unmarshal(body, &event); err != nil {
		return nil, refuse(ReasonMalformed, "body is not a JSON event: %v", err)
	}
	return &event, nil
}

// DeliveryID is the de-duplication key: the same on every retry of one delivery. webhook-id is
// preferred because the Standard Webhooks signature covers it; X-Continuum-Delivery is equal.
func DeliveryID(h http.Header) string {
	if id := h.Get("webhook-id"); id != "" {
		return id
	}
	return h.Get("X-Continuum-Delivery")
}

// Deduplicator remembers delivery ids for a TTL so a retried delivery is processed once.
// Delivery is at-least-once: when a 200 is lost on the way back, the same delivery comes again.
//
// It lives in memory, per process. With several instances or restarts use shared storage: Redis
// (SET dedupe:<id> 1 NX EX 86400) or a UNIQUE column written in the transaction of your side effects.
type Deduplicator struct {
	TTL        time.Duration
	MaxEntries int
	Now        func() time.Time // for tests; nil means time.Now

	mu     sync.Mutex
	expiry map[string]time.Time
	order  []seen // insertion order; entries of released ids are skipped when they come up
}

type seen struct {
	id     string
	expiry time.Time
}

// NewDeduplicator remembers ids for ttl, at most 100,000 of them.
func NewDeduplicator(ttl time.Duration) *Deduplicator {
	return &Deduplicator{TTL: ttl, MaxEntries: 100_000}
}

// Claim reports whether the id is new (process the delivery) or a duplicate (skip it).
func (d *Deduplicator) Claim(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	if d.expiry == nil {
		d.expiry = make(map[string]time.Time)
	}
	for len(d.order) > 0 {
		oldest := d.order[0]
		current, live := d.expiry[oldest.id]
		stale := !live || !current.Equal(oldest.expiry)
		if !stale && oldest.expiry.After(now) {
			break
		}
		d.order = d.order[1:]
		if !stale {
			delete(d.expiry, oldest.id) // expired
		}
	}
	if _, dup := d.expiry[id]; dup {
		return false
	}
	if d.MaxEntries > 0 && len(d.expiry) >= d.MaxEntries {
		// Full: forget the oldest live id.
		for len(d.order) > 0 {
			oldest := d.order[0]
			d.order = d.order[1:]
			if current, live := d.expiry[oldest.id]; live && current.Equal(oldest.expiry) {
				delete(d.expiry, oldest.id)
				break
			}
		}
	}
	expiry := now.Add(d.TTL)
	d.expiry[id] = expiry
	d.order = append(d.order, seen{id, expiry})
	return true
}

// Release forgets an id whose processing failed, so the sender's retry is processed.
func (d *Deduplicator) Release(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.expiry, id)
}

// Handler is a net/http handler for the webhook endpoint: POST only, verify the raw body,
// de-duplicate, call OnEvent, answer 200. A refused delivery gets 400 with the reason; an OnEvent
// error gets 500 so CONTINUUM retries. Keep OnEvent fast (CONTINUUM times out after 30 s):
// store the event or queue it, and do slow work elsewhere.
type Handler struct {
	Verifier *Verifier
	Dedupe   *Deduplicator // nil: no de-duplication
	OnEvent  func(ctx context.Context, deliveryID string, event *Event) error
	// MaxBodyBytes caps the body read; zero means 2 MiB (CONTINUUM events are at most 1 MiB).
	MaxBodyBytes int64
}

func writeJSON(w http.ResponseWriter, status int, value interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(value)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method_not_allowed"})
		return
	}
	limit := h.MaxBodyBytes
	if limit == 0 {
		limit = 2 << 20
	}
	// The raw bytes, exactly as sent: the signature covers them.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body_too_large"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unreadable_body"})
		return
	}
	event, err := h.Verifier.Verify(r.Header, body)
	var refused *VerificationError
	if errors.As(err, &refused) {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": "invalid_signature", "reason": string(refused.Reason), "detail": refused.Message,
		})
		return
	}
	if err != nil { // our configuration, not the sender's fault
		log.Printf("continuum webhook: %v", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "misconfigured"})
		return
	}
	id := DeliveryID(r.Header)
	if id != "" && h.Dedupe != nil && !h.Dedupe.Claim(id) {
		// Already processed: a 2xx stops the retries.
		writeJSON(w, http.StatusOK, map[string]string{"status": "duplicate", "delivery_id": id})
		return
	}
	if err := h.OnEvent(r.Context(), id, event); err != nil {
		if id != "" && h.Dedupe != nil {
			h.Dedupe.Release(id) // so the retry is processed
		}
		log.Printf("continuum webhook: delivery %s (%s) failed: %v", id, event.Event, err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "handler_failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "delivery_id": id})
}
