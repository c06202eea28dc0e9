// Package consumers is the mapper's message edge: it declares the durable
// consumers, decodes each delivery, hands it to the sync use case and
// translates the outcome into what JetStream should do with the message
// (ack, retry later, or dead-letter at once).
package consumers

import (
	"context"
	"errors"
	"fmt"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
)

// Referrals declares the consumer of referral snapshots.
func Referrals(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamReferrals,
		Durable:        syncer.ConsumerReferrals,
		FilterSubjects: []string{bus.SubjectReferralObserved},
		Concurrency:    concurrency,
	}
}

// Results declares the consumer of the salesforce-adapter's results.
func Results(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamResults,
		Durable:        syncer.ConsumerResults,
		FilterSubjects: []string{bus.SubjectSalesforceResult},
		Concurrency:    concurrency,
	}
}

// Opportunities declares the consumer of opportunity snapshots.
func Opportunities(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamOpportunities,
		Durable:        syncer.ConsumerOpportunities,
		FilterSubjects: []string{bus.SubjectOpportunityObserved},
		Concurrency:    concurrency,
	}
}

// PartnerCenterResults declares the consumer of the partnercenter-adapter's
// results.
func PartnerCenterResults(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamResults,
		Durable:        syncer.ConsumerPCResults,
		FilterSubjects: []string{bus.SubjectPartnerCenterResult},
		Concurrency:    concurrency,
	}
}

// OpportunityHandler handles OpportunityObserved deliveries.
func OpportunityHandler(svc *syncer.Service) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var ev cosellv1.OpportunityObserved
		if err := m.Unmarshal(&ev); err != nil {
			return err
		}
		_, err := svc.OpportunityObserved(ctx, delivery(m), &ev)
		return translate(err)
	}
}

// PartnerCenterResultHandler handles PartnerCenterResult deliveries.
func PartnerCenterResultHandler(svc *syncer.Service) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var res cosellv1.PartnerCenterResult
		if err := m.Unmarshal(&res); err != nil {
			return err
		}
		_, err := svc.PartnerCenterResult(ctx, delivery(m), &res)
		return translate(err)
	}
}

// ObservedHandler handles ReferralObserved deliveries.
func ObservedHandler(svc *syncer.Service) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var ev cosellv1.ReferralObserved
		if err := m.Unmarshal(&ev); err != nil {
			return err
		}
		_, err := svc.Observed(ctx, delivery(m), &ev)
		return translate(err)
	}
}

// ResultHandler handles SalesforceResult deliveries.
func ResultHandler(svc *syncer.Service) bus.Handler {
	return func(ctx context.Context, m *bus.Msg) error {
		var res cosellv1.SalesforceResult
		if err := m.Unmarshal(&res); err != nil {
			return err
		}
		_, err := svc.Result(ctx, delivery(m), &res)
		return translate(err)
	}
}

// delivery identifies m for the inbox; a message published without a
// Msg-Id is keyed by its position in the stream.
func delivery(m *bus.Msg) syncer.Delivery {
	id := m.MsgID
	if id == "" {
		id = fmt.Sprintf("%s/%d", m.Stream, m.StreamSeq)
	}
	return syncer.Delivery{MsgID: id, Stream: m.Stream, StreamSeq: m.StreamSeq}
}

// translate marks errors that no redelivery can fix as permanent, so the
// message is dead-lettered at once; anything else is retried with backoff.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syncer.ErrMalformed), errors.Is(err, store.ErrInvalid):
		return bus.Permanent(err)
	default:
		return err
	}
}
