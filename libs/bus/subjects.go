package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects of the pipeline. Each carries one message type of package
// cosellv1 and ends in its schema version, so a breaking change can run
// beside the old subject during a rollout.
const (
	// SubjectNotificationPrefix starts the subjects of verified Partner
	// Center notifications (PartnerCenterNotification); the event name
	// follows, see NotificationSubject.
	SubjectNotificationPrefix = "pc.notification.v1."
	// SubjectReferralObserved carries ReferralObserved snapshots.
	SubjectReferralObserved = "referral.observed.v1"
	// SubjectUpsertOpportunity carries UpsertOpportunityCommand.
	SubjectUpsertOpportunity = "cmd.salesforce.upsert-opportunity.v1"
	// SubjectSalesforceWriteback carries SalesforceWriteback.
	SubjectSalesforceWriteback = "cmd.salesforce.writeback.v1"
	// SubjectSalesforceResult carries SalesforceResult.
	SubjectSalesforceResult = "result.salesforce.v1"
	// SubjectOpportunityObserved carries OpportunityObserved snapshots.
	SubjectOpportunityObserved = "opportunity.observed.v1"
	// SubjectPartnerCenterCommand carries PartnerCenterCommand.
	SubjectPartnerCenterCommand = "cmd.partnercenter.v1"
	// SubjectPartnerCenterResult carries PartnerCenterResult.
	SubjectPartnerCenterResult = "result.partnercenter.v1"
	// SubjectDeadLetterPrefix starts the dead-letter subjects; the name of
	// the service that gave up follows, see DeadLetterSubject. The payload is
	// the original message's, unchanged, with the reason in headers.
	SubjectDeadLetterPrefix = "deadletter.v1."
)

// Names of the streams that hold the pipeline's subjects.
const (
	// StreamNotifications holds Partner Center notifications.
	StreamNotifications = "PC_NOTIFICATIONS"
	// StreamReferrals holds referral snapshots.
	StreamReferrals = "REFERRALS"
	// StreamOpportunities holds opportunity snapshots.
	StreamOpportunities = "OPPORTUNITIES"
	// StreamSalesforceCommands holds commands for the salesforce-adapter.
	StreamSalesforceCommands = "SALESFORCE_COMMANDS"
	// StreamPartnerCenterCommands holds commands for the
	// partnercenter-adapter.
	StreamPartnerCenterCommands = "PARTNERCENTER_COMMANDS"
	// StreamResults holds the adapters' results.
	StreamResults = "RESULTS"
	// StreamDeadLetters holds dead letters of every service.
	StreamDeadLetters = "DEADLETTERS"
)

// NotificationSubject returns the subject of a Partner Center notification
// with the given event name, e.g. pc.notification.v1.referral-created. The
// event name comes from an HTTP body, so it is checked to be a single
// subject token: a name with dots or wildcards could otherwise land on
// another subject.
func NotificationSubject(eventName string) (string, error) {
	if !validToken(eventName) {
		return "", fmt.Errorf("notification subject: event name %q is not a valid subject token", eventName)
	}
	return SubjectNotificationPrefix + eventName, nil
}

// DeadLetterSubject returns the dead-letter subject of a service.
func DeadLetterSubject(service string) string {
	return SubjectDeadLetterPrefix + service
}

// validToken reports whether s is a non-empty subject token made of
// letters, digits, '-' and '_' only.
func validToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// StreamSpec declares one stream. Subjects are listed exactly (wildcards
// only where a token varies) so that a publish to a misspelt subject fails
// with "no stream" instead of vanishing.
type StreamSpec struct {
	// Name is the stream's name.
	Name string
	// Description says what the stream is for; shown by `nats stream info`.
	Description string
	// Subjects are the subjects the stream stores.
	Subjects []string
	// MaxAge bounds how long messages are kept for replay and diagnosis.
	MaxAge time.Duration
}

// Default retention of the pipeline's streams. Messages are kept after they
// are acknowledged (limits retention), so a week of traffic can be replayed
// or inspected; dead letters are kept longer because a human must look at
// them.
const (
	// DefaultMaxAge is how long the pipeline's streams keep messages.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultDeadLetterMaxAge is how long the dead-letter stream keeps them.
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
)

// Streams returns the streams of the pipeline, both directions and the dead
// letters. It returns a new slice on every call.
func Streams() []StreamSpec {
	return []StreamSpec{
		{Name: StreamNotifications, Description: "verified Partner Center webhook notifications", Subjects: []string{SubjectNotificationPrefix + "*"}, MaxAge: DefaultMaxAge},
		{Name: StreamReferrals, Description: "Partner Center referral snapshots", Subjects: []string{SubjectReferralObserved}, MaxAge: DefaultMaxAge},
		{Name: StreamOpportunities, Description: "Salesforce opportunity snapshots", Subjects: []string{SubjectOpportunityObserved}, MaxAge: DefaultMaxAge},
		{Name: StreamSalesforceCommands, Description: "commands for the salesforce-adapter", Subjects: []string{SubjectUpsertOpportunity, SubjectSalesforceWriteback}, MaxAge: DefaultMaxAge},
		{Name: StreamPartnerCenterCommands, Description: "commands for the partnercenter-adapter", Subjects: []string{SubjectPartnerCenterCommand}, MaxAge: DefaultMaxAge},
		{Name: StreamResults, Description: "results of the adapters' external writes", Subjects: []string{SubjectSalesforceResult, SubjectPartnerCenterResult}, MaxAge: DefaultMaxAge},
		{Name: StreamDeadLetters, Description: "messages a service gave up on, with the reason in headers", Subjects: []string{SubjectDeadLetterPrefix + "*"}, MaxAge: DefaultDeadLetterMaxAge},
	}
}

// StreamOptions are the deployment-dependent settings of every stream.
type StreamOptions struct {
	// Replicas is the number of copies in a JetStream cluster; 0 means 1.
	// Production clusters use 3.
	Replicas int
	// DuplicateWindow is how long JetStream remembers Msg-Ids to drop
	// repeats; 0 means 2 minutes. It is only a first filter: handlers stay
	// idempotent through their inbox, so a long window buys little and
	// costs server memory.
	DuplicateWindow time.Duration
	// MaxAge, when non-zero, is the max age of the pipeline's streams (all
	// but the dead-letter stream). Zero means "not set": a new stream gets
	// DefaultMaxAge and an existing stream keeps the max age it has, so a
	// service that was not given a value never undoes one that was (see
	// EnsureStream).
	MaxAge time.Duration
	// DeadLetterMaxAge is MaxAge for the dead-letter stream (default
	// DefaultDeadLetterMaxAge), with the same zero rule.
	DeadLetterMaxAge time.Duration
}

// maxAge returns the max age o sets for the stream s, or 0 when o leaves
// it unset.
func (o StreamOptions) maxAge(s StreamSpec) time.Duration {
	if s.Name == StreamDeadLetters {
		return o.DeadLetterMaxAge
	}
	return o.MaxAge
}

// DefaultDuplicateWindow is the duplicate window used when
// StreamOptions.DuplicateWindow is zero (the server's own default).
const DefaultDuplicateWindow = 2 * time.Minute

// streamConfig turns a spec into the server configuration.
func streamConfig(s StreamSpec, o StreamOptions) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        s.Name,
		Description: s.Description,
		Subjects:    s.Subjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      s.MaxAge,
		Duplicates:  o.DuplicateWindow,
		Replicas:    o.Replicas,
	}
	if d := o.maxAge(s); d > 0 {
		cfg.MaxAge = d
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultDuplicateWindow
	}
	if cfg.Duplicates > cfg.MaxAge {
		cfg.Duplicates = cfg.MaxAge
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	return cfg
}

// EnsureStreams creates or updates every stream of Streams. It is
// idempotent, so every service calls it at start-up and the first one to
// arrive on a fresh broker creates them.
func (c *Conn) EnsureStreams(ctx context.Context, o StreamOptions) error {
	if o.MaxAge < 0 || o.DeadLetterMaxAge < 0 {
		return fmt.Errorf("ensure streams: max age must not be negative (STREAM_MAX_AGE %v, DEAD_LETTER_MAX_AGE %v)", o.MaxAge, o.DeadLetterMaxAge)
	}
	var errs []error
	for _, s := range Streams() {
		if err := c.EnsureStream(ctx, s, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EnsureStream creates or updates one stream.
//
// The max age follows one rule, so that services started with different
// settings cannot undo each other on every start: a max age set in o is
// applied (on create and on update, with a warning when it changes an
// existing stream); one left at zero is the spec's default on create and
// the stream's current value on update. Set STREAM_MAX_AGE and
// DEAD_LETTER_MAX_AGE in every service's environment, or in none.
func (c *Conn) EnsureStream(ctx context.Context, s StreamSpec, o StreamOptions) error {
	cfg := streamConfig(s, o)
	st, err := c.js.Stream(ctx, s.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return fmt.Errorf("ensure stream %s: %w", s.Name, err)
	default:
		current := st.CachedInfo().Config.MaxAge
		if o.maxAge(s) == 0 {
			cfg.MaxAge = current
			if cfg.Duplicates > cfg.MaxAge && cfg.MaxAge > 0 {
				cfg.Duplicates = cfg.MaxAge
			}
		} else if current != cfg.MaxAge && c.log != nil {
			c.log.WarnContext(ctx, "changing stream max age", "stream", s.Name, "from", current.String(), "to", cfg.MaxAge.String())
		}
	}
	if _, err := c.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("ensure stream %s: %w", s.Name, err)
	}
	return nil
}
