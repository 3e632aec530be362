package sqldb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// maxDeleteRuns bounds the seq runs named by one DELETE statement (two parameters each).
const maxDeleteRuns = 500

// DeleteChanges deletes exactly the outbox rows whose seq is in seqs and returns how many
// it deleted. A reader claims the rows it copied this way: on PostgreSQL and MySQL a row
// with a lower seq may commit after a higher one was read, so deleting by range could drop
// a row nobody has read. Runs of consecutive seqs are deleted with BETWEEN, which is exact
// because every seq of such a run is in seqs. seqs may be in any order and hold duplicates.
func (db *DB) DeleteChanges(ctx context.Context, seqs []int64) (int64, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	runs := seqRuns(seqs)
	var total int64
	for len(runs) > 0 {
		n := min(len(runs), maxDeleteRuns)
		q, args := deleteRunsSQL(db.d, runs[:n])
		res, err := db.sql.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("delete changes: %w", err)
		}
		if k, err := res.RowsAffected(); err == nil {
			total += k
		}
		runs = runs[n:]
	}
	return total, nil
}

// seqRun is a closed range of consecutive seqs.
type seqRun struct{ lo, hi int64 }

// seqRuns sorts a copy of seqs and folds it into maximal runs of consecutive values.
func seqRuns(seqs []int64) []seqRun {
	s := slices.Clone(seqs)
	slices.Sort(s)
	s = slices.Compact(s)
	runs := []seqRun{{s[0], s[0]}}
	for _, v := range s[1:] {
		if last := &runs[len(runs)-1]; v == last.hi+1 {
			last.hi = v
		} else {
			runs = append(runs, seqRun{v, v})
		}
	}
	return runs
}

func deleteRunsSQL(d Dialect, runs []seqRun) (string, []any) {
	var b strings.Builder
	seq := d.QuoteIdent("seq")
	b.WriteString("DELETE FROM " + d.QuoteIdent(OutboxTable) + " WHERE ")
	args := make([]any, 0, 2*len(runs))
	for i, r := range runs {
		if i > 0 {
			b.WriteString(" OR ")
		}
		if r.lo == r.hi {
			b.WriteString(seq + " = " + d.Placeholder(len(args)+1))
			args = append(args, r.lo)
			continue
		}
		b.WriteString("(" + seq + " BETWEEN " + d.Placeholder(len(args)+1) + " AND " + d.Placeholder(len(args)+2) + ")")
		args = append(args, r.lo, r.hi)
	}
	return b.String(), args
}

// ChangeCount is what the outbox holds for one model.
type ChangeCount struct {
	// Count is the number of outbox rows of the model.
	Count int64
	// Oldest is the changed_at of the oldest of them (UTC).
	Oldest time.Time
}

// CountChanges returns, per model, how many committed rows the outbox holds and when the
// oldest of them was written. Models without rows are absent.
func (db *DB) CountChanges(ctx context.Context) (map[string]ChangeCount, error) {
	d := db.d
	q := "SELECT " + d.QuoteIdent("model") + ", COUNT(*), MIN(" + d.QuoteIdent("changed_at") + ") FROM " +
		d.QuoteIdent(OutboxTable) + " GROUP BY " + d.QuoteIdent("model")
	rows, err := db.sql.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("count changes: %w", err)
	}
	defer rows.Close()
	out := map[string]ChangeCount{}
	for rows.Next() {
		var (
			model   string
			c       ChangeCount
			changed any
		)
		if err := rows.Scan(&model, &c.Count, &changed); err != nil {
			return nil, fmt.Errorf("count changes: %w", err)
		}
		c.Oldest = changedAt(changed)
		out[model] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count changes: %w", err)
	}
	return out, nil
}
