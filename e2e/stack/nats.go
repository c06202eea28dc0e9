package stack

import (
	"context"
	"fmt"
	"net/http"
)

// natsMonitorURL is the monitoring endpoint of the pinned nats-server the
// stack started ("" when the stack uses an external server).
func (s *Stack) natsMonitorURL() string {
	p := s.procs["nats-server"]
	if p == nil {
		return ""
	}
	for i := 0; i+1 < len(p.Args); i++ {
		if p.Args[i] == "-m" {
			return "http://127.0.0.1:" + p.Args[i+1]
		}
	}
	return ""
}

// StreamMessages returns how many messages a JetStream stream has ever
// stored (its last sequence number), read from the pinned server's
// monitoring endpoint, so a test can tell whether anything was published.
func (s *Stack) StreamMessages(ctx context.Context, stream string) (uint64, error) {
	mon := s.natsMonitorURL()
	if mon == "" {
		return 0, fmt.Errorf("no monitoring endpoint: the stack did not start nats-server")
	}
	var jsz struct {
		AccountDetails []struct {
			StreamDetail []struct {
				Name  string `json:"name"`
				State struct {
					Messages uint64 `json:"messages"`
					LastSeq  uint64 `json:"last_seq"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := doJSON(ctx, newHTTPClient(), http.MethodGet, mon+"/jsz?streams=true", nil, nil, &jsz, http.StatusOK); err != nil {
		return 0, err
	}
	for _, a := range jsz.AccountDetails {
		for _, st := range a.StreamDetail {
			if st.Name == stream {
				return st.State.LastSeq, nil
			}
		}
	}
	return 0, fmt.Errorf("stream %s not found on %s", stream, mon)
}

// ConsumersBusy lists the JetStream consumers that still have messages to
// deliver or awaiting an acknowledgement ("stream/consumer: n pending, m
// unacked"); an empty list means the pipeline has settled.
func (s *Stack) ConsumersBusy(ctx context.Context) ([]string, error) {
	mon := s.natsMonitorURL()
	if mon == "" {
		return nil, fmt.Errorf("no monitoring endpoint: the stack did not start nats-server")
	}
	var jsz struct {
		AccountDetails []struct {
			StreamDetail []struct {
				Name           string `json:"name"`
				ConsumerDetail []struct {
					Name          string `json:"name"`
					NumPending    uint64 `json:"num_pending"`
					NumAckPending int    `json:"num_ack_pending"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := doJSON(ctx, newHTTPClient(), http.MethodGet, mon+"/jsz?streams=true&consumers=true", nil, nil, &jsz, http.StatusOK); err != nil {
		return nil, err
	}
	var busy []string
	for _, a := range jsz.AccountDetails {
		for _, st := range a.StreamDetail {
			for _, c := range st.ConsumerDetail {
				if c.NumPending > 0 || c.NumAckPending > 0 {
					busy = append(busy, fmt.Sprintf("%s/%s: %d pending, %d unacked", st.Name, c.Name, c.NumPending, c.NumAckPending))
				}
			}
		}
	}
	return busy, nil
}

// ConsumerBacklog returns, per JetStream consumer ("stream/consumer"), how
// many messages it still has to deliver plus how many await an
// acknowledgement: where work is queueing at the moment of the call.
func (s *Stack) ConsumerBacklog(ctx context.Context) (map[string]uint64, error) {
	mon := s.natsMonitorURL()
	if mon == "" {
		return nil, fmt.Errorf("no monitoring endpoint: the stack did not start nats-server")
	}
	var jsz struct {
		AccountDetails []struct {
			StreamDetail []struct {
				Name           string `json:"name"`
				ConsumerDetail []struct {
					Name          string `json:"name"`
					NumPending    uint64 `json:"num_pending"`
					NumAckPending uint64 `json:"num_ack_pending"`
				} `json:"consumer_detail"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := doJSON(ctx, newHTTPClient(), http.MethodGet, mon+"/jsz?streams=true&consumers=true", nil, nil, &jsz, http.StatusOK); err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, a := range jsz.AccountDetails {
		for _, st := range a.StreamDetail {
			for _, c := range st.ConsumerDetail {
				out[st.Name+"/"+c.Name] = c.NumPending + c.NumAckPending
			}
		}
	}
	return out, nil
}
