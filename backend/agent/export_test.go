package agent

import "context"

// Housekeep runs one round of the housekeeping now (tests drive it with their clock).
func (a *Agent) Housekeep(ctx context.Context) { a.housekeep(ctx) }

// BodyBytesInFlight is how much of the body memory budget is reserved.
func (a *Agent) BodyBytesInFlight() int64 { return a.bodies.inFlight() }
