// Package reconcile is Moox Sync's SyncBackupJob done safely: it finds the rows where a
// sync's target differs from its source and repairs only those, and it is the initial load
// of a new sync (an empty target differs everywhere).
//
// The source drives. It cuts its key space into ranges by its own keys (sqldb.SplitRanges)
// and asks the target (a Peer) for the row count and digest of each range over the columns
// the sync writes (sqldb.Hashes on both sides: digests are computed from canonical values,
// so SQLite, PostgreSQL and MySQL agree). Ranges that agree are done. A range the target has
// no rows in is loaded: its source rows are sent. A range the source has no rows in holds
// only rows to delete. A small range is compared row by row (key and digest of each row);
// any other differing range is cut into Fanout pieces and compared again.
//
// Repairs are protocol.Changes handed to a Repairer, which delivers them the normal way
// (signed batches, applied by apply). A target row the source does not have is deleted
// only when the target says the sync owns it (sqldb mooxsync_owned: the sync wrote it) and
// the source confirms by key that it does not have it; rows the target created itself are
// never touched. A dry run compares and reports, and sends nothing.
//
// Integration (see the package's wire.go for the data-plane contract): the target agent
// answers the three endpoints with Target.Serve; apply records ownership with
// sqldb.Writer.MarkOwned and Disown; the source agent runs Run with a Source, a
// ClientPeer and a Repairer that feeds its delivery queue.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json" // sizes only: several times faster than encoding/json on rows

	"github.com/mooxsync/mooxsync/backend/protocol"
	"github.com/mooxsync/mooxsync/backend/sqldb"
)

// Repairer delivers repair changes to the target. Each change carries the source row as
// the capture would (Data: every column of the source table, canonical values, before the
// transformer) or, for a delete, only the key; Seq is 0. Repair returns once the changes
// are safely on their way (queued durably or accepted by the target); changes of one call
// are in order, and calls come one at a time.
//
// Deliver them in the sync's own ordered stream, to this sync's target only: after the
// changes captured before Repair was called and before those captured after, so that a
// repair never overtakes a newer change of the same row (and the transformer runs on them
// as on captured rows). Never through the outbox, which every sync of the model reads: a
// delete meant for one target must not reach another.
type Repairer interface {
	Repair(ctx context.Context, changes []protocol.Change) error
}

// RepairFunc adapts a function to Repairer.
type RepairFunc func(ctx context.Context, changes []protocol.Change) error

// Repair calls f.
func (f RepairFunc) Repair(ctx context.Context, changes []protocol.Change) error {
	return f(ctx, changes)
}

// Options tune a run. Zero values take the defaults.
type Options struct {
	// DryRun compares and reports what would change, and changes nothing.
	DryRun bool
	// Repair receives the repairs; required unless DryRun.
	Repair Repairer
	// OriginPlatformID is set on every change (the source platform's id).
	OriginPlatformID int64
	// TopRanges is the number of ranges the key space is first cut into (default: one per
	// 128 source rows, at least 64, at most MaxRanges). Small first ranges keep the rows
	// that later levels read again few; their digests cost about 110 bytes each.
	TopRanges int
	// Fanout is the number of pieces a differing range is cut into (default 16).
	Fanout int
	// LeafRows: a differing range with at most this many source rows is compared row by
	// row (default 16).
	LeafRows int
	// BatchSize is the most changes per Repair call (default 1000). Repairs are sent as
	// soon as a group of ranges is settled, so most calls carry fewer.
	BatchSize int
	// Progress, when set, is called with the rows settled so far, at most about ten times
	// a second and once at the end.
	Progress func(Progress)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Progress is how far a run is: Done of the Total source rows are settled (found equal,
// or compared row by row and repaired).
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// Report is the outcome of a run. In a dry run the counts are what the run would have done.
type Report struct {
	SyncID int64     `json:"sync_id"`
	DryRun bool      `json:"dry_run"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// RowsCompared are the source rows whose ranges were compared.
	RowsCompared int64 `json:"rows_compared"`
	// RangesCompared counts the range digests compared.
	RangesCompared int64 `json:"ranges_compared"`
	// Repaired counts the rows sent: Inserted (missing on the target) plus Updated
	// (different on the target).
	Repaired int64 `json:"repaired"`
	Inserted int64 `json:"inserted"`
	Updated  int64 `json:"updated"`
	// Deleted counts the target rows deleted: owned by the sync and gone from the source.
	Deleted int64 `json:"deleted"`
	// SkippedUnowned counts the target rows the source does not have that were left alone
	// because the sync does not own them (the target's own rows).
	SkippedUnowned int64 `json:"skipped_unowned"`
	// SkippedExisting counts the target rows that differ from the source but were left
	// alone because the sync's if_exists is skip or error (it never overwrites).
	SkippedExisting int64 `json:"skipped_existing"`
	// Bytes counts the JSON bytes exchanged: requests and answers of the peer, and the
	// changes handed to the Repairer.
	Bytes int64 `json:"bytes"`
	// Errors lists what went wrong: the error that ended the run, and anomalies that did
	// not (target rows the source turned out to have after all).
	Errors []string `json:"errors"`
}

// Defaults.
const (
	defaultFanout    = 16
	defaultLeafRows  = 16
	defaultBatchSize = 1000
	// leafBatchRows is about how many source rows one round of row-by-row comparison
	// covers.
	leafBatchRows = 4096
	// loadBatchRows is about how many rows one load scan of the source covers (a scan holds
	// a read snapshot while its rows are sent).
	loadBatchRows   = 50_000
	rowsPerTopRange = 128
	minTopRanges    = 64
)

// Run reconciles the target of src's sync with its source. It returns the report; an
// error ends the run early (it is also in the report's Errors).
func Run(ctx context.Context, src *Source, dst Peer, opts Options) (Report, error) {
	if opts.Fanout < 2 {
		opts.Fanout = defaultFanout
	}
	if opts.LeafRows <= 0 {
		opts.LeafRows = defaultLeafRows
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &run{src: src, dst: dst, o: opts, key: src.proj.TargetKey, cols: src.proj.Columns()}
	r.rep = Report{SyncID: src.sync.ID, DryRun: opts.DryRun, Start: opts.Now().UTC(), Errors: []string{}}
	err := r.run(ctx)
	if err != nil {
		r.rep.Errors = append(r.rep.Errors, err.Error())
	}
	r.rep.End = opts.Now().UTC()
	r.progress(true)
	return r.rep, err
}

type run struct {
	src  *Source
	dst  Peer
	o    Options
	key  string   // target key column
	cols []string // target columns
	rep  Report

	total, done  int64
	lastProgress time.Time
	pending      []protocol.Change
}

// piece is one range under comparison with the source's count of rows in it.
type piece struct {
	r     sqldb.KeyRange
	count int64
	// atom: the source's keys could not cut this range further (its rows share one key),
	// so it is compared row by row whatever its size.
	atom bool
}

func (r *run) run(ctx context.Context) error {
	if !r.o.DryRun && r.o.Repair == nil {
		return errors.New("reconcile: no Repairer for a run that is not a dry run")
	}
	total, err := r.src.count(ctx)
	if err != nil {
		return err
	}
	r.total = total
	r.progress(true)
	top := r.o.TopRanges
	if top <= 0 {
		top = min(max(int(total/rowsPerTopRange), minTopRanges), MaxRanges)
	}
	frontier, parts := []piece{{count: total}}, top
	for level := 0; len(frontier) > 0; level++ {
		var next []piece
		for start := 0; start < len(frontier); {
			// A chunk of parents whose pieces fit in one request.
			end := min(start+max(MaxRanges/parts, 1), len(frontier))
			children, err := r.cut(ctx, frontier[start:end], parts)
			if err != nil {
				return err
			}
			for _, c := range chunk(children, MaxRanges, 0, nil, pieceSize) {
				more, err := r.compare(ctx, c, level == 0)
				if err != nil {
					return err
				}
				next = append(next, more...)
			}
			start = end
		}
		frontier, parts = next, r.o.Fanout
	}
	return r.flush(ctx)
}

// cut splits parents into up to parts pieces each by the source's keys.
func (r *run) cut(ctx context.Context, parents []piece, parts int) ([]piece, error) {
	ranges := make([]sqldb.KeyRange, len(parents))
	counts := make([]int64, len(parents))
	for i, p := range parents {
		ranges[i], counts[i] = p.r, p.count
	}
	bounds, err := r.src.split(ctx, ranges, counts, parts)
	if err != nil {
		return nil, err
	}
	var out []piece
	for i, p := range parents {
		lo := p.r.Lo
		for _, b := range bounds[i] {
			out = append(out, piece{r: sqldb.KeyRange{Lo: lo, Hi: b}})
			lo = b
		}
		out = append(out, piece{r: sqldb.KeyRange{Lo: lo, Hi: p.r.Hi}, atom: len(bounds[i]) == 0 && p.count > 1})
	}
	return out, nil
}

// compare compares the digests of ranges on both sides, settles what it can and returns
// the ranges to cut further.
func (r *run) compare(ctx context.Context, pieces []piece, top bool) ([]piece, error) {
	ranges := make([]sqldb.KeyRange, len(pieces))
	for i, p := range pieces {
		ranges[i] = p.r
	}
	req := HashesRequest{SyncID: r.src.sync.ID, Key: r.key, Columns: r.cols, Ranges: wireRanges(ranges)}
	mine, theirs, err := together(
		func() ([]sqldb.RangeHash, error) { return r.src.hashes(ctx, ranges) },
		func() (HashesResponse, error) { return r.dst.Hashes(ctx, req) })
	if err != nil {
		return nil, err
	}
	if len(theirs.Hashes) != len(ranges) {
		return nil, fmt.Errorf("reconcile: target answered %d hashes for %d ranges", len(theirs.Hashes), len(ranges))
	}
	r.account(req, theirs)
	r.rep.RangesCompared += int64(len(ranges))
	var next, leaves, loads, extras []piece
	for i, m := range mine {
		t := theirs.Hashes[i]
		p := pieces[i]
		p.count = m.Count
		if top {
			r.rep.RowsCompared += m.Count
		}
		switch {
		case m.Count == t.Count && m.Hash == t.Hash:
			r.done += m.Count
		case t.Count == 0:
			loads = append(loads, p)
		case m.Count == 0:
			extras = append(extras, p)
		case m.Count <= int64(r.o.LeafRows) || p.atom:
			leaves = append(leaves, p)
		default:
			next = append(next, p)
		}
	}
	r.progress(false)
	if err := r.load(ctx, loads); err != nil {
		return nil, err
	}
	for _, group := range groups(append(leaves, extras...), leafBatchRows) {
		if err := r.rowByRow(ctx, group); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// groups cuts pieces into runs of about rows source rows, in key order (and within the
// limits of one request).
func groups(ps []piece, rows int64) [][]piece {
	sortPieces(ps)
	return chunk(ps, MaxRanges, rows, func(p piece) int64 { return p.count }, pieceSize)
}

// requestBudget is about the most bytes of keys one request carries (a Target refuses
// bodies over its limit; long keys, such as titles, make ranges large).
const requestBudget = 4 << 20

// chunk cuts items into consecutive runs: a run closes before it would pass max items,
// a total weight of limit (when limit > 0), or requestBudget bytes by size. An item
// heavier or larger than that alone makes a run of its own.
func chunk[T any](items []T, max int, limit int64, weight func(T) int64, size func(T) int) [][]T {
	var (
		out    [][]T
		start  int
		w      int64
		nbytes int
	)
	for i, it := range items {
		var wi int64
		if weight != nil {
			wi = weight(it)
		}
		si := size(it)
		if i > start && (i-start == max || (limit > 0 && w+wi > limit) || nbytes+si > requestBudget) {
			out = append(out, items[start:i])
			start, w, nbytes = i, 0, 0
		}
		w += wi
		nbytes += si
	}
	if start < len(items) {
		out = append(out, items[start:])
	}
	return out
}

// pieceSize is about the bytes a range takes in a request.
func pieceSize(p piece) int { return len(p.r.Lo) + len(p.r.Hi) + 20 }

// keySize is about the bytes a key takes in a request.
func keySize(k string) int { return len(k) + 4 }

// sortPieces sorts pieces (which do not overlap) in key order; "" as Lo is the first.
func sortPieces(ps []piece) {
	slices.SortFunc(ps, func(a, b piece) int { return strings.Compare(a.r.Lo, b.r.Lo) })
}

// load sends every source row of ranges the target has no rows in: the initial load.
func (r *run) load(ctx context.Context, ps []piece) error {
	for _, group := range groups(ps, loadBatchRows) {
		var n int64
		for _, p := range group {
			n += p.count
		}
		if r.o.DryRun {
			r.rep.Inserted += n
			r.rep.Repaired += n
			r.done += n
			r.progress(false)
			continue
		}
		ranges := make([]sqldb.KeyRange, len(group))
		for i, p := range group {
			ranges[i] = p.r
		}
		err := r.src.rows(ctx, ranges, nil, func(_ string, row map[string]any) error {
			r.rep.Inserted++
			r.rep.Repaired++
			r.done++
			return r.send(ctx, r.upsert(protocol.EventCreated, row))
		})
		if err != nil {
			return err
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rowByRow compares the rows of ranges key by key and repairs the differences.
func (r *run) rowByRow(ctx context.Context, group []piece) error {
	ranges := make([]sqldb.KeyRange, len(group))
	var n int64
	for i, p := range group {
		ranges[i] = p.r
		n += p.count
	}
	// The target's keys come in pages (a range the source has few rows in may hold many of
	// the target's own), merged with the source's as they come.
	req := r.keysRequest(ranges)
	mine, page, err := together(
		func() ([]sqldb.KeyHash, error) { return r.src.keyHashes(ctx, ranges) },
		func() (KeysResponse, error) { return r.dst.Keys(ctx, req) })
	if err != nil {
		return err
	}
	r.account(req, page)
	var created, updated []string
	i := 0
	for {
		var extra []string
		for _, t := range page.Keys {
			for i < len(mine) && mine[i].Key < t.Key {
				created = append(created, mine[i].Key)
				i++
			}
			switch {
			case i < len(mine) && mine[i].Key == t.Key:
				if mine[i].Hash != t.Hash {
					updated = append(updated, t.Key)
				}
				i++
			case i > 0 && mine[i-1].Key == t.Key:
				updated = append(updated, t.Key) // the target has this key twice
			default:
				extra = append(extra, t.Key)
			}
		}
		if err := r.deleteExtras(ctx, extra); err != nil {
			return err
		}
		if !page.More || len(page.Keys) == 0 {
			break
		}
		if ranges = after(ranges, page.Keys[len(page.Keys)-1].Key); len(ranges) == 0 {
			break
		}
		req = r.keysRequest(ranges)
		if page, err = r.dst.Keys(ctx, req); err != nil {
			return err
		}
		r.account(req, page)
	}
	for ; i < len(mine); i++ {
		created = append(created, mine[i].Key)
	}
	if err := r.repairRows(ctx, created, updated); err != nil {
		return err
	}
	r.done += n
	// Send now: the longer a repair waits, the likelier a newer captured change of its row
	// reaches the target first and the repair then undoes it.
	return r.flush(ctx)
}

func (r *run) keysRequest(ranges []sqldb.KeyRange) KeysRequest {
	return KeysRequest{SyncID: r.src.sync.ID, Key: r.key, Columns: r.cols, Ranges: wireRanges(ranges), Limit: MaxKeys}
}

// after returns what of ranges lies after key k.
func after(ranges []sqldb.KeyRange, k string) []sqldb.KeyRange {
	for i, rg := range ranges {
		if rg.Hi == "" || k < rg.Hi {
			out := append([]sqldb.KeyRange(nil), ranges[i:]...)
			if rg.Lo == "" || k > rg.Lo {
				out[0].Lo = k
			}
			return out
		}
	}
	return nil
}

// repairRows sends the source rows of keys: created ones are missing on the target,
// updated ones differ.
func (r *run) repairRows(ctx context.Context, created, updated []string) error {
	if ie := r.src.sync.IfExists; ie == protocol.IfExistsSkip || ie == protocol.IfExistsError {
		// The sync never overwrites a row the target has: apply would skip the update
		// (or fail its batch).
		r.rep.SkippedExisting += int64(len(updated))
		updated = nil
	}
	if len(created)+len(updated) == 0 {
		return nil
	}
	r.rep.Inserted += int64(len(created))
	r.rep.Updated += int64(len(updated))
	r.rep.Repaired += int64(len(created) + len(updated))
	if r.o.DryRun {
		return nil
	}
	isNew := make(map[string]bool, len(created))
	for _, k := range created {
		isNew[k] = true
	}
	return r.src.rows(ctx, nil, append(created, updated...), func(k string, row map[string]any) error {
		event := protocol.EventUpdated
		if isNew[k] {
			event = protocol.EventCreated
		}
		return r.send(ctx, r.upsert(event, row))
	})
}

// deleteExtras deletes the target rows of keys that the sync owns and the source does not
// have; the others are the target's own and are left alone.
func (r *run) deleteExtras(ctx context.Context, keys []string) error {
	for _, part := range chunk(keys, MaxKeys, 0, nil, keySize) {
		req := OwnedRequest{SyncID: r.src.sync.ID, Keys: part}
		resp, err := r.dst.Owned(ctx, req)
		if err != nil {
			return err
		}
		r.account(req, resp)
		r.rep.SkippedUnowned += int64(len(part) - len(resp.Keys))
		// Confirm by key (not by range): a key the source has is never deleted.
		has, err := r.src.has(ctx, resp.Keys)
		if err != nil {
			return err
		}
		var kept []string
		for _, k := range resp.Keys {
			if has[k] {
				kept = append(kept, k)
				continue
			}
			r.rep.Deleted++
			if !r.o.DryRun {
				c := protocol.Change{
					EventType: protocol.EventDeleted, Model: r.src.sync.SourceModel,
					Key:              protocol.Key{Field: r.src.proj.Key, Value: k},
					OriginPlatformID: r.o.OriginPlatformID, ChangedAt: r.changedAt(),
				}
				if err := r.send(ctx, c); err != nil {
					return err
				}
			}
		}
		if len(kept) > 0 {
			r.rep.Errors = append(r.rep.Errors, fmt.Sprintf("%d target rows outside the source's key ranges are on the source after all; left alone (first: %q)", len(kept), kept[0]))
		}
	}
	return nil
}

// upsert builds the change that sends a source row.
func (r *run) upsert(event string, row map[string]any) protocol.Change {
	return protocol.Change{
		EventType: event, Model: r.src.sync.SourceModel,
		Key:  protocol.Key{Field: r.src.proj.Key, Value: row[r.src.proj.Key]},
		Data: row, OriginPlatformID: r.o.OriginPlatformID, ChangedAt: r.changedAt(),
	}
}

func (r *run) changedAt() string {
	return r.o.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// send queues a change and hands a full batch to the Repairer.
func (r *run) send(ctx context.Context, c protocol.Change) error {
	r.pending = append(r.pending, c)
	if len(r.pending) < r.o.BatchSize {
		return nil
	}
	return r.flush(ctx)
}

func (r *run) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		r.progress(false)
		return nil
	}
	body, err := json.Marshal(r.pending)
	if err != nil {
		return fmt.Errorf("reconcile: encode repairs: %w", err)
	}
	r.rep.Bytes += int64(len(body))
	if err := r.o.Repair.Repair(ctx, r.pending); err != nil {
		return fmt.Errorf("reconcile: repair: %w", err)
	}
	r.pending = r.pending[:0]
	r.progress(false)
	return nil
}

// account adds the JSON sizes of a request and its answer.
func (r *run) account(req, resp any) {
	for _, v := range []any{req, resp} {
		if b, err := json.Marshal(v); err == nil {
			r.rep.Bytes += int64(len(b))
		}
	}
}

// progress reports progress at most every 100 ms, or now when final.
func (r *run) progress(final bool) {
	if r.o.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(r.lastProgress) < 100*time.Millisecond {
		return
	}
	r.lastProgress = now
	r.o.Progress(Progress{Done: min(r.done, r.total), Total: r.total})
}

func wireRanges(ranges []sqldb.KeyRange) []Range {
	out := make([]Range, len(ranges))
	for i, rg := range ranges {
		out[i] = Range{Lo: rg.Lo, Hi: rg.Hi}
	}
	return out
}

// together runs f (here) and g (on another goroutine) at the same time: the source and the
// target work on their halves of a comparison in parallel.
func together[A, B any](f func() (A, error), g func() (B, error)) (A, B, error) {
	var (
		wg   sync.WaitGroup
		b    B
		gErr error
	)
	wg.Go(func() { b, gErr = g() })
	a, fErr := f()
	wg.Wait()
	return a, b, errors.Join(fErr, gErr)
}

// String renders a report in one line, for logs.
func (rep Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sync %d: %d rows compared in %d ranges, %d repaired (%d inserted, %d updated), %d deleted, %d unowned left alone, %d bytes, %s",
		rep.SyncID, rep.RowsCompared, rep.RangesCompared, rep.Repaired, rep.Inserted, rep.Updated, rep.Deleted,
		rep.SkippedUnowned, rep.Bytes, rep.End.Sub(rep.Start).Round(time.Millisecond))
	if rep.SkippedExisting > 0 {
		fmt.Fprintf(&b, ", %d differing rows kept (if_exists)", rep.SkippedExisting)
	}
	if rep.DryRun {
		b.WriteString(" (dry run)")
	}
	return b.String()
}
