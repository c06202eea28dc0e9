package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/cli/internal/svc"
)

func runLinksList(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--state active|parked|orphaned|stopped] [--limit N]",
		"Lists the mapper's referral ↔ opportunity links, most recently changed first (read from Postgres).")
	state := fs.String("state", "", "only links in this `state` (active, parked, orphaned, stopped)")
	limit := fs.Int("limit", 50, "at most this many links")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	switch *state {
	case "", "active", "parked", "orphaned", "stopped":
	default:
		return usagef("--state %q: want active, parked, orphaned or stopped", *state)
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	links, err := db.ListLinks(ctx, opsdb.LinkFilter{State: *state, Limit: *limit})
	if err != nil {
		return err
	}
	if e.opts.json {
		if links == nil {
			links = []opsdb.Link{}
		}
		return writeJSON(e.out, links)
	}
	if len(links) == 0 {
		fmt.Fprintln(e.out, "no links")
		return nil
	}
	t := newTable("REFERRAL", "OPPORTUNITY", "STATE", "PC UPDATED", "LINK UPDATED", "DEAD LETTERS", "REASON")
	for _, l := range links {
		t.add(l.ReferralID, l.OpportunityID, l.State, tsp(l.PCUpdatedAt), ts(l.UpdatedAt), fmt.Sprint(l.PendingDeadLetts), truncate(l.ParkReason, 60))
	}
	return t.print(e.out)
}

// linkShow is what links show prints with --json.
type linkShow struct {
	opsdb.Link
	Audit []opsdb.AuditEvent `json:"audit"`
}

func runLinksShow(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<referral-id|opportunity-id> [--audit N]",
		"Shows one link, found by referral id or Salesforce opportunity id, with its last audit events.")
	n := fs.Int("audit", 10, "show this many of the newest audit events")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(args, "referral or opportunity id")
	if err != nil {
		return err
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	l, err := db.FindLink(ctx, id)
	if err != nil {
		return err
	}
	trail, err := db.Audit(ctx, l.ReferralID, *n)
	if err != nil {
		return err
	}
	if e.opts.json {
		if trail == nil {
			trail = []opsdb.AuditEvent{}
		}
		return writeJSON(e.out, linkShow{Link: l, Audit: trail})
	}
	written := ""
	if len(l.LastWritten) > 0 {
		written = string(l.LastWritten)
	}
	if err := kv(e.out,
		"Referral", l.ReferralID,
		"Engagement", l.EngagementID,
		"Opportunity", l.OpportunityID,
		"Account", l.AccountID,
		"State", l.State,
		"Park reason", l.ParkReason,
		"PC updated", tsp(l.PCUpdatedAt),
		"PC eTag", l.PCETag,
		"Last command", l.LastCommandID,
		"Last result", l.LastResultID,
		"Replays", fmt.Sprint(l.Replays),
		"Dead letters", fmt.Sprintf("%d pending", l.PendingDeadLetts),
		"Created", ts(l.CreatedAt),
		"Updated", ts(l.UpdatedAt),
		"Last written", truncate(written, 200),
	); err != nil {
		return err
	}
	fmt.Fprintf(e.out, "\nLast %d audit events (cosellctl audit %s for all):\n", len(trail), l.ReferralID)
	return printAudit(e, trail)
}

func runAudit(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<referral-id|opportunity-id> [--limit N] [--details]",
		"Prints the timeline of a referral or opportunity from the mapper's audit log, oldest first.")
	limit := fs.Int("limit", 200, "at most this many (the newest) events")
	details := fs.Bool("details", false, "print each event's details")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(args, "referral or opportunity id")
	if err != nil {
		return err
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	trail, err := db.Audit(ctx, id, *limit)
	if err != nil {
		return err
	}
	if len(trail) == 0 {
		if _, err := db.FindLink(ctx, id); errors.Is(err, opsdb.ErrNotFound) {
			return fmt.Errorf("no audit events and no link for %q: check the id (a referral id or a Salesforce opportunity id)", id)
		}
	}
	if e.opts.json {
		if trail == nil {
			trail = []opsdb.AuditEvent{}
		}
		return writeJSON(e.out, trail)
	}
	if err := printAudit(e, trail); err != nil {
		return err
	}
	if *details {
		fmt.Fprintln(e.out)
		for _, a := range trail {
			if len(a.Details) == 0 {
				continue
			}
			b, _ := json.Marshal(a.Details)
			fmt.Fprintf(e.out, "%s %s: %s\n", ts(a.At), a.Kind, b)
		}
	}
	return nil
}

func printAudit(e *env, trail []opsdb.AuditEvent) error {
	if len(trail) == 0 {
		fmt.Fprintln(e.out, "no audit events")
		return nil
	}
	t := newTable("AT", "KIND", "OPPORTUNITY", "MESSAGE", "TRACE")
	for _, a := range trail {
		t.add(ts(a.At), a.Kind, a.OpportunityID, a.Message, a.TraceID)
	}
	return t.print(e.out)
}

// replayAnswer is the mapper's answer to a link replay.
type replayAnswer struct {
	ReferralID    string `json:"referralId"`
	OpportunityID string `json:"opportunityId,omitempty"`
	CommandID     string `json:"commandId,omitempty"`
	State         string `json:"state"`
	Message       string `json:"message,omitempty"`
}

// replayLink asks the mapper to re-apply a referral's latest snapshot.
func replayLink(ctx context.Context, e *env, referralID string) (replayAnswer, error) {
	var ans replayAnswer
	body, err := e.mapper().PostJSON(ctx, "/admin/links/"+url.PathEscape(referralID)+"/replay", nil)
	if err != nil {
		var se *svc.StatusError
		if errors.As(err, &se) && se.Status == http.StatusConflict {
			return ans, fmt.Errorf("the mapper has no snapshot of referral %s to replay yet (%s); wait for the next observation or run cosellctl backfill", referralID, se.Message)
		}
		return ans, fmt.Errorf("replay referral %s: %w", referralID, err)
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return ans, fmt.Errorf("replay referral %s: the mapper's answer is not JSON: %w", referralID, err)
	}
	return ans, nil
}

func runResync(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<referral-id|opportunity-id>",
		`Sends the referral's latest Partner Center snapshot through the mapper again (the
mapper's link replay): it is mapped with the current mapping file and, if anything
differs from what was last written, upserted to Salesforce; a parked link resumes.
An opportunity id is resolved to its referral through the links.`)
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneArg(args, "referral or opportunity id")
	if err != nil {
		return err
	}
	referralID := id
	if db, derr := e.openDB(ctx); derr == nil {
		if l, ferr := db.FindLink(ctx, id); ferr == nil && l.ReferralID != "" {
			referralID = l.ReferralID
		} else if ferr != nil && !errors.Is(ferr, opsdb.ErrNotFound) {
			return ferr
		}
	}
	ans, err := replayLink(ctx, e, referralID)
	if err != nil {
		return err
	}
	if e.opts.json {
		return writeJSON(e.out, ans)
	}
	if err := kv(e.out, "Referral", ans.ReferralID, "Opportunity", ans.OpportunityID, "Command", ans.CommandID,
		"State", ans.State, "Message", ans.Message); err != nil {
		return err
	}
	if ans.State == "parked" {
		fmt.Fprintln(e.app.Stderr, "the link is still parked: fix the cause above and run resync again")
		return errFailed
	}
	return nil
}
