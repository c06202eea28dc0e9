package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cosell/cosell/cli/internal/opsdb"
	"github.com/cosell/cosell/libs/bus"
	// Registers the cosell.v1 messages, so payloads named by Cosell-Type decode.
	_ "github.com/cosell/cosell/libs/events/cosellv1"
)

func runDLList(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "[--service S] [--all] [--limit N]",
		`Lists the messages each service gave up on (its dead_letters table) and the mapper's
parked syncs (rows with a referral). Only those not yet replayed, unless --all.`)
	service := fs.String("service", "", "only this `service` (mapper, partnercenter-adapter, salesforce-adapter)")
	all := fs.Bool("all", false, "include dead letters already replayed")
	limit := fs.Int("limit", 100, "at most this many per service")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs(args); err != nil {
		return err
	}
	if _, ok := opsdb.Schemas[*service]; *service != "" && !ok {
		return usagef("--service %q: want one of %s", *service, strings.Join(opsdb.ServiceNames(), ", "))
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	dls, err := db.ListDeadLetters(ctx, opsdb.DeadLetterFilter{Service: *service, All: *all, Limit: *limit})
	if err != nil {
		return err
	}
	if e.opts.json {
		if dls == nil {
			dls = []opsdb.DeadLetter{}
		}
		return writeJSON(e.out, dls)
	}
	if len(dls) == 0 {
		fmt.Fprintln(e.out, "no dead letters")
		return nil
	}
	t := newTable("REF", "FAILED", "KIND", "SUBJECT", "REFERRAL", "DELIVERIES", "REPLAYED", "REASON")
	for _, d := range dls {
		t.add(d.Ref, ts(d.FailedAt), dlKind(d), d.Subject, d.ReferralID, fmt.Sprint(d.Deliveries), tsp(d.ReplayedAt), truncate(d.Reason, 70))
	}
	return t.print(e.out)
}

// dlKind says whether a row is a parked sync or a poison message.
func dlKind(d opsdb.DeadLetter) string {
	if d.ReferralID != "" {
		return "parked sync"
	}
	return "message"
}

// dlView is a dead letter as show prints it with --json: the payload
// decoded when it can be.
type dlView struct {
	opsdb.DeadLetter
	PayloadType    string          `json:"payloadType,omitempty"`
	PayloadDecoded json.RawMessage `json:"payloadDecoded,omitempty"`
}

func runDLShow(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<service:id>", "Shows one dead letter (a REF from 'dead-letters list', e.g. mapper:12) with its headers and payload.")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneArg(args, "dead letter (service:id)")
	if err != nil {
		return err
	}
	if _, _, err := opsdb.ParseRef(ref); err != nil {
		return usagef("%v", err)
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	d, err := db.GetDeadLetter(ctx, ref)
	if err != nil {
		return err
	}
	typ, decoded := decodePayload(d)
	if e.opts.json {
		return writeJSON(e.out, dlView{DeadLetter: d, PayloadType: typ, PayloadDecoded: decoded})
	}
	if err := kv(e.out, "Ref", d.Ref, "Kind", dlKind(d), "Service", d.Service, "Referral", d.ReferralID,
		"Consumer", d.Consumer, "Stream", fmt.Sprintf("%s #%d", d.Stream, d.StreamSeq), "Subject", d.Subject,
		"Msg-Id", d.MsgID, "Deliveries", fmt.Sprint(d.Deliveries), "Permanent", fmt.Sprint(d.Permanent),
		"Failed", ts(d.FailedAt), "Replayed", tsp(d.ReplayedAt), "Trace", d.TraceID, "Reason", d.Reason); err != nil {
		return err
	}
	if len(d.Headers) > 0 {
		fmt.Fprintln(e.out, "\nHeaders:")
		keys := make([]string, 0, len(d.Headers))
		for k := range d.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(e.out, "  %s: %s\n", k, strings.Join(d.Headers[k], ", "))
		}
	}
	fmt.Fprintf(e.out, "\nPayload (%d bytes", len(d.Payload))
	if typ != "" {
		fmt.Fprintf(e.out, ", %s", typ)
	}
	fmt.Fprintln(e.out, "):")
	switch {
	case decoded != nil:
		return indentJSON(e.out, decoded)
	case utf8.Valid(d.Payload):
		fmt.Fprintln(e.out, string(d.Payload))
	default:
		fmt.Fprintf(e.out, "%x\n", d.Payload)
	}
	return nil
}

func indentJSON(w io.Writer, raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		_, err = fmt.Fprintln(w, string(raw))
		return err
	}
	return writeJSON(w, v)
}

// decodePayload renders a protobuf payload as JSON using its Cosell-Type
// header, or, for the mapper's parked syncs (which carry no headers), as a
// ReferralObserved. A raw referral_json field is shown as the document.
func decodePayload(d opsdb.DeadLetter) (string, json.RawMessage) {
	typ := ""
	if v := d.Headers[bus.HeaderType]; len(v) > 0 {
		typ = v[0]
	} else if d.ReferralID != "" {
		typ = "cosell.v1.ReferralObserved"
	}
	if typ == "" {
		if json.Valid(d.Payload) {
			return "JSON", json.RawMessage(d.Payload)
		}
		return "", nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typ))
	if err != nil {
		return typ, nil
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(d.Payload, m); err != nil {
		return typ + " (undecodable: " + err.Error() + ")", nil
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return typ, nil
	}
	return typ, inlineJSONBytes(out)
}

// inlineJSONBytes replaces the base64 of fields named *_json with the JSON
// document they hold, which is what an operator wants to read.
func inlineJSONBytes(doc []byte) json.RawMessage {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return doc
	}
	for k, v := range fields {
		if !strings.HasSuffix(k, "_json") {
			continue
		}
		var b []byte
		if json.Unmarshal(v, &b) == nil && json.Valid(b) {
			fields[k] = b
		}
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return doc
	}
	return out
}

// replayResult is what replay prints.
type replayResult struct {
	Ref     string        `json:"ref"`
	Via     string        `json:"via"`
	Subject string        `json:"subject,omitempty"`
	Link    *replayAnswer `json:"link,omitempty"`
}

func runDLReplay(ctx context.Context, e *env, path string, args []string) error {
	fs := e.flags(path, "<service:id>",
		`Replays one dead letter once its cause is fixed. A parked sync (a mapper row with a
referral) is replayed by the mapper (POST /admin/links/{referralId}/replay), which
re-applies the referral's latest snapshot. Any other dead letter is published again,
unchanged, on its original subject (libs/bus Replay, Msg-Id derived from its position
so a repeated replay is dropped), and marked replayed.`)
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	ref, err := oneArg(args, "dead letter (service:id)")
	if err != nil {
		return err
	}
	if _, _, err := opsdb.ParseRef(ref); err != nil {
		return usagef("%v", err)
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return err
	}
	d, err := db.GetDeadLetter(ctx, ref)
	if err != nil {
		return err
	}
	if d.ReplayedAt != nil {
		return fmt.Errorf("dead letter %s was already replayed at %s", ref, ts(*d.ReplayedAt))
	}
	res := replayResult{Ref: ref}
	if d.ReferralID != "" {
		ans, err := replayLink(ctx, e, d.ReferralID)
		if err != nil {
			return err
		}
		res.Via, res.Link = "mapper link replay", &ans
	} else {
		if err := republish(ctx, e, d); err != nil {
			return err
		}
		if _, err := db.MarkReplayed(ctx, ref); err != nil {
			return fmt.Errorf("published again, but %w", err)
		}
		res.Via, res.Subject = "republished", d.Subject
	}
	if e.opts.json {
		return writeJSON(e.out, res)
	}
	if res.Link != nil {
		fmt.Fprintf(e.out, "%s: replayed by the mapper: referral %s is %s (%s)\n", ref, res.Link.ReferralID, res.Link.State, res.Link.Message)
		if res.Link.State == "parked" {
			return errFailed
		}
		return nil
	}
	fmt.Fprintf(e.out, "%s: published again on %s\n", ref, d.Subject)
	return nil
}

// republish publishes a bus dead letter again on its subject.
func republish(ctx context.Context, e *env, d opsdb.DeadLetter) error {
	cctx, cancel := context.WithTimeout(ctx, e.opts.timeout)
	defer cancel()
	conn, err := bus.Connect(cctx, e.opts.natsURL, "cosellctl", bus.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return fmt.Errorf("NATS is not reachable: %w", err)
	}
	defer conn.Close()
	return conn.Replay(cctx, bus.DeadLetter{
		Service: d.Service, Consumer: d.Consumer, Stream: d.Stream, StreamSeq: d.StreamSeq, Subject: d.Subject,
		MsgID: d.MsgID, Deliveries: uint64(d.Deliveries), Reason: d.Reason, Permanent: d.Permanent,
		Headers: d.Headers, Payload: d.Payload, TraceID: d.TraceID, FailedAt: d.FailedAt,
	})
}
