package consumer

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"bad request is parked", &pcclient.APIError{Status: http.StatusBadRequest}, true},
		{"forbidden is parked", fmt.Errorf("wrapped: %w", &pcclient.APIError{Status: http.StatusForbidden}), true},
		{"throttling is retried", &pcclient.APIError{Status: http.StatusTooManyRequests, RetryAfter: time.Minute}, false},
		{"outage is retried", &pcclient.APIError{Status: http.StatusServiceUnavailable}, false},
		{"401 after refresh is retried", &pcclient.APIError{Status: http.StatusUnauthorized}, false},
		{"transport error is retried", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := translate(tc.err)
			if bus.IsPermanent(got) != tc.permanent {
				t.Errorf("permanent = %v, want %v", bus.IsPermanent(got), tc.permanent)
			}
			if !errors.Is(got, tc.err) {
				t.Error("the original error is not in the chain")
			}
		})
	}
}
