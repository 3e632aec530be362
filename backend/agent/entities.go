package agent

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// The Moox entity API (index, store, show, update, destroy) over the agent's copy of the
// desired state. Changes made here keep the revision: the control center remains the source
// of truth, and its next PUT /api/state replaces them.

// entity is one kind of item of the entity API, kept in a list of the desired state.
type entity[T any] struct {
	name string
	list func(*protocol.State) *[]T
	id   func(*T) *int64
	// fresh is the item a store decodes its body over (the defaults).
	fresh func() T
	// check validates an item about to be stored or updated, completing what it may.
	check func(st protocol.State, item *T) error
	// thaw readies a copy of a stored item for an update body to be decoded over it.
	thaw func(item *T, body []byte)
	// cascade removes what depends on a destroyed item, or refuses the destroy.
	cascade func(st *protocol.State, id int64) error
}

func (a *Agent) platformEntity() *entity[protocol.Platform] {
	return &entity[protocol.Platform]{
		name:  "platform",
		list:  func(st *protocol.State) *[]protocol.Platform { return &st.Platforms },
		id:    func(p *protocol.Platform) *int64 { return &p.ID },
		fresh: func() protocol.Platform { return protocol.Platform{} },
		check: func(_ protocol.State, p *protocol.Platform) error {
			if p.Name == "" || p.Domain == "" {
				return protocol.Errorf(protocol.CodeBadRequest, "platform %d: name and domain are required", p.ID)
			}
			return nil
		},
		thaw: func(*protocol.Platform, []byte) {},
		// As the Moox migrations cascade, a platform's syncs and peer entry go with it; the
		// platform this agent serves cannot go.
		cascade: func(st *protocol.State, id int64) error {
			if id == a.selfID() {
				return protocol.Errorf(protocol.CodeConflict, "platform %d is the platform this agent serves", id)
			}
			st.Syncs = slices.DeleteFunc(st.Syncs, func(s protocol.Sync) bool {
				return s.SourcePlatformID == id || s.TargetPlatformID == id
			})
			st.Peers = slices.DeleteFunc(st.Peers, func(p protocol.Peer) bool { return p.PlatformID == id })
			return nil
		},
	}
}

func (a *Agent) syncEntity() *entity[protocol.Sync] {
	return &entity[protocol.Sync]{
		name: "sync",
		list: func(st *protocol.State) *[]protocol.Sync { return &st.Syncs },
		id:   func(s *protocol.Sync) *int64 { return &s.ID },
		fresh: func() protocol.Sync {
			return protocol.Sync{Status: true, IfExists: protocol.IfExistsUpdate, SyncAllFields: true}
		},
		check: func(st protocol.State, s *protocol.Sync) error {
			if s.Title == "" {
				s.Title = syncTitle(st, *s)
			}
			return validateSync(*s, a.selfID())
		},
		// A field_mappings in the body replaces the mappings rather than merging into them.
		thaw: func(s *protocol.Sync, body []byte) {
			s.FieldMappings = maps.Clone(s.FieldMappings)
			var fields map[string]json.RawMessage
			if json.Unmarshal(body, &fields) == nil {
				if _, ok := fields["field_mappings"]; ok {
					s.FieldMappings = nil
				}
			}
		},
		cascade: func(*protocol.State, int64) error { return nil },
	}
}

func (e *entity[T]) index(a *Agent) handlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) error {
		st := a.current()
		protocol.WriteJSON(w, http.StatusOK, *e.list(&st))
		return nil
	}
}

func (e *entity[T]) show(a *Agent) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		st := a.current()
		i, err := e.find(&st, id)
		if err != nil {
			return err
		}
		protocol.WriteJSON(w, http.StatusOK, (*e.list(&st))[i])
		return nil
	}
}

// store adds an item; without an id it gets the next free one. Answers 201 with the item.
func (e *entity[T]) store(a *Agent) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte) error {
		item := e.fresh()
		if err := protocol.DecodeStrict(body, &item); err != nil {
			return err
		}
		err := a.editState(r, func(st *protocol.State) error {
			list := e.list(st)
			id := e.id(&item)
			switch {
			case *id < 0:
				return protocol.Errorf(protocol.CodeBadRequest, "id must be positive")
			case *id == 0:
				for i := range *list {
					*id = max(*id, *e.id(&(*list)[i]))
				}
				*id++
			}
			if _, err := e.find(st, *id); err == nil {
				return protocol.Errorf(protocol.CodeConflict, "%s %d exists already", e.name, *id)
			}
			if err := e.check(*st, &item); err != nil {
				return err
			}
			*list = append(*list, item)
			return nil
		})
		if err != nil {
			return err
		}
		protocol.WriteJSON(w, http.StatusCreated, item)
		return nil
	}
}

// update changes the fields the body names and answers 200 with the item.
func (e *entity[T]) update(a *Agent) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, body []byte) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		var item T
		err = a.editState(r, func(st *protocol.State) error {
			i, err := e.find(st, id)
			if err != nil {
				return err
			}
			item = (*e.list(st))[i]
			e.thaw(&item, body)
			if err := protocol.DecodeStrict(body, &item); err != nil {
				return err
			}
			if *e.id(&item) != id {
				return protocol.Errorf(protocol.CodeBadRequest, "id cannot change")
			}
			if err := e.check(*st, &item); err != nil {
				return err
			}
			(*e.list(st))[i] = item
			return nil
		})
		if err != nil {
			return err
		}
		protocol.WriteJSON(w, http.StatusOK, item)
		return nil
	}
}

// destroy removes an item and answers 204.
func (e *entity[T]) destroy(a *Agent) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		err = a.editState(r, func(st *protocol.State) error {
			i, err := e.find(st, id)
			if err != nil {
				return err
			}
			if err := e.cascade(st, id); err != nil {
				return err
			}
			list := e.list(st)
			*list = slices.Delete(*list, i, i+1)
			return nil
		})
		if err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// find returns the index of the item with the given id, or a not_found error.
func (e *entity[T]) find(st *protocol.State, id int64) (int, error) {
	list := *e.list(st)
	for i := range list {
		if *e.id(&list[i]) == id {
			return i, nil
		}
	}
	return -1, protocol.Errorf(protocol.CodeNotFound, "no %s %d", e.name, id)
}

// platformSyncs answers GET /api/platform/{id}/sync: the syncs where the platform is source
// or target.
func (a *Agent) platformSyncs(w http.ResponseWriter, r *http.Request, _ []byte) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	st := a.current()
	if platformIndex(st, id) < 0 && id != a.selfID() {
		return protocol.Errorf(protocol.CodeNotFound, "no platform %d", id)
	}
	out := []protocol.Sync{}
	for _, s := range st.Syncs {
		if s.SourcePlatformID == id || s.TargetPlatformID == id {
			out = append(out, s)
		}
	}
	protocol.WriteJSON(w, http.StatusOK, out)
	return nil
}

// editState applies edit to a copy of the state in force and makes the result the state in
// force, keeping its revision.
func (a *Agent) editState(r *http.Request, edit func(*protocol.State) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.current()
	st.Platforms = slices.Clone(st.Platforms)
	st.Syncs = slices.Clone(st.Syncs)
	st.Peers = slices.Clone(st.Peers)
	if err := edit(&st); err != nil {
		return err
	}
	if err := a.store.PutState(r.Context(), st, a.opts.Now()); err != nil {
		return err
	}
	a.setState(st)
	a.log.Info("state edited through the entity API", "method", r.Method, "path", r.URL.Path, "revision", st.Revision)
	return nil
}

func platformIndex(st protocol.State, id int64) int {
	return slices.IndexFunc(st.Platforms, func(p protocol.Platform) bool { return p.ID == id })
}

// syncTitle generates a sync's title as Moox does: "source.domain (model) to target.domain (model)".
func syncTitle(st protocol.State, s protocol.Sync) string {
	domain := func(id int64) string {
		if i := platformIndex(st, id); i >= 0 {
			return st.Platforms[i].Domain
		}
		return "platform " + protocol.FormatID(id)
	}
	return domain(s.SourcePlatformID) + " (" + s.SourceModel + ") to " + domain(s.TargetPlatformID) + " (" + s.TargetModel + ")"
}
