package consumer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
)

// BenchmarkNotification measures the hot path of one notification: GET
// the referral from the emulator over loopback HTTP and publish its
// snapshot to JetStream, with many notifications in flight, as the
// consumer runs them. Each iteration edits nothing, so after the first
// publish per referral JetStream de-duplicates: the figure is dominated by
// the GET and the publish round trip.
func BenchmarkNotification(b *testing.B) {
	emu := pcemutest.Start(b)
	ctx := context.Background()
	conn, err := bus.Connect(ctx, bustest.RunServer(b), "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	ep := &auth.Endpoint{TokenURL: emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	pc, err := pcclient.New(pcclient.Config{APIBaseURL: emu.URL, WebhookAPIBaseURL: emu.URL, MaxConcurrency: 16,
		Tokens: auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password))})
	if err != nil {
		b.Fatal(err)
	}
	obs, err := observe.New(pc, conn, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	const referrals = 64
	ns := make([]*cosellv1.PartnerCenterNotification, referrals)
	for i := range ns {
		ref := emu.SeedInbound(fmt.Sprintf("bench %d", i), false)
		ns[i] = &cosellv1.PartnerCenterNotification{EventName: "referral-updated", ReferralId: ref.ID}
	}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := obs.Notification(ctx, ns[i%referrals]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
