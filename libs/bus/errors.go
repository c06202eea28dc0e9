package bus

import (
	"errors"
	"time"
)

// permanentError marks a failure that redelivery cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that no redelivery can fix (a payload that
// does not decode, a record the target system rejects), so Consume parks
// the message as a dead letter at once instead of retrying it. It returns
// nil when err is nil, so `return bus.Permanent(err)` is safe.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError carries the delay the handler wants before a retry.
type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as retryable no sooner than delay, overriding the
// consumer's backoff for this delivery. It is for failures that come with
// their own schedule, such as an HTTP 429 with Retry-After. It returns nil
// when err is nil.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: delay}
}

// retryDelay returns the delay requested through RetryAfter, if any.
func retryDelay(err error) (time.Duration, bool) {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.delay, true
	}
	return 0, false
}
