package app

import (
	"context"
	"hash/fnv"
	"log/slog"
	"strconv"

	"github.com/mooxsync/mooxsync/backend/catalog"
)

// ActivityService is the activity feed: pushes and agents that started failing.
type ActivityService struct {
	ctx     context.Context
	log     *slog.Logger
	catalog *catalog.Store
}

// List returns the newest entries, newest first; limit 0 or less means 100, at most 1000.
func (s *ActivityService) List(limit int) ([]ActivityEntry, error) {
	acts, err := s.catalog.Activity(s.ctx, limit)
	if err != nil {
		return nil, failure(s.log, "ActivityService.List", err)
	}
	out := make([]ActivityEntry, 0, len(acts))
	for _, a := range acts {
		out = append(out, ActivityEntry{
			ID: activityID(a), At: formatTime(a.At), Kind: a.Kind, PlatformID: a.PlatformID,
			PlatformName: a.PlatformName, Result: a.Result, Code: nonEmpty(a.Code), Message: nonEmpty(a.Message),
		})
	}
	return out, nil
}

// activityID derives an entry's id from its content: the catalog does not expose the rows'
// ids, and the frontend needs a key that stays the same from one List to the next. It is
// below 2^53, so JavaScript numbers hold it exactly.
func activityID(a catalog.Activity) int64 {
	h := fnv.New64a()
	for _, s := range []string{a.Kind, formatTime(a.At), strconv.FormatInt(a.PlatformID, 10),
		strconv.FormatInt(a.Revision, 10), a.Result, a.Code, a.Message} {
		_, _ = h.Write([]byte(s))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64() & (1<<53 - 1))
}
