package syncer

import (
	"hash/maphash"
	"sync"

	"github.com/cosell/cosell/services/mapper/mapping"
)

// parseCache remembers the documents the mapper parsed lately, keyed by
// their bytes. One referral's messages (its snapshot, the Salesforce
// result, the echo of our write) each read the same stored snapshot and
// record; decoding them is JSON into maps, the mapper's largest CPU cost
// after Postgres. Parsed documents are shared read-only: the mapping
// package copies before it changes one (ApplyPatch).
//
// The key is two independent 64-bit hashes of the bytes and their length,
// so a wrong hit needs a 128-bit collision. Eviction is first in, first
// out: one referral's messages arrive within seconds of each other, which
// is all the reuse there is.
type parseCache[T any] struct {
	parse func([]byte) (T, error)
	seeds [2]maphash.Seed

	mu    sync.Mutex
	items map[cacheKey]T
	order []cacheKey
	next  int
}

type cacheKey struct {
	h1, h2 uint64
	n      int
}

func newParseCache[T any](capacity int, parse func([]byte) (T, error)) *parseCache[T] {
	return &parseCache[T]{
		parse: parse,
		seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		items: make(map[cacheKey]T, capacity),
		order: make([]cacheKey, 0, capacity),
	}
}

// get returns data parsed, from the cache when the same bytes were parsed
// lately. A parse error is not cached.
func (c *parseCache[T]) get(data []byte) (T, error) {
	k := cacheKey{maphash.Bytes(c.seeds[0], data), maphash.Bytes(c.seeds[1], data), len(data)}
	c.mu.Lock()
	v, ok := c.items[k]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := c.parse(data)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return v, nil
	}
	if len(c.order) < cap(c.order) {
		c.order = append(c.order, k)
	} else {
		delete(c.items, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % len(c.order)
	}
	c.items[k] = v
	return v, nil
}

// Sizes of the mapper's parse caches. Parsed documents are maps, far
// larger than their JSON: 512 of each raised the mapper's peak RSS in
// `make bench` from 46 to 68 MiB. 128 cover the second or so between a
// referral's snapshot and the echo of its opportunity at 100+ referrals/s.
const (
	referralCacheSize    = 128
	opportunityCacheSize = 128
)

func newReferralCache() *parseCache[mapping.Referral] {
	return newParseCache(referralCacheSize, mapping.ParseReferral)
}

func newOpportunityCache() *parseCache[mapping.Opportunity] {
	return newParseCache(opportunityCacheSize, mapping.ParseOpportunity)
}
