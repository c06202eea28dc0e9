package deadletters_test

import (
	"context"
	"testing"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/deadletters"
)

func TestRecordIsIdempotent(t *testing.T) {
	fsys, err := migrations.FS("salesforce-adapter")
	if err != nil {
		t.Fatal(err)
	}
	s := deadletters.New(storetest.NewDB(t, "salesforce-adapter", fsys))
	ctx := context.Background()
	dl := bus.DeadLetter{Service: "salesforce-adapter", Consumer: "c", Stream: "S", StreamSeq: 7, Subject: "x",
		Deliveries: 3, Reason: "bad", Permanent: true, Headers: map[string][]string{"a": {"b"}}, Payload: []byte{1}}
	for range 2 {
		if err := s.Record(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Pending(ctx); err != nil || n != 1 {
		t.Fatalf("pending = %d, %v; want 1", n, err)
	}
}
