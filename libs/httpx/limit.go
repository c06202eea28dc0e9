package httpx

import (
	"errors"
	"net/http"
)

// MaxBytes limits request bodies to n bytes. A request that declares a
// larger Content-Length is answered 413 without reaching the handler; a
// body that turns out larger while being read fails the handler's read with
// an error for which IsTooLarge is true, and the handler answers 413.
func MaxBytes(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// IsTooLarge reports whether err came from reading past a MaxBytes limit.
func IsTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
