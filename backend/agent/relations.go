package agent

import (
	"net/http"
	"slices"

	"github.com/mooxsync/mooxsync/backend/protocol"
)

// relationsStore returns the relation store, or a not_found error when there is none.
func (a *Agent) relationsStore() (RelationStore, error) {
	if a.opts.Relations == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "platform relations are not available on this agent")
	}
	return a.opts.Relations, nil
}

// relationTarget reads {model} and {key} of a relations path.
func relationTarget(r *http.Request) (model, key string, err error) {
	model, key = r.PathValue("model"), r.PathValue("key")
	if model == "" || key == "" {
		return "", "", protocol.Errorf(protocol.CodeBadRequest, "want /api/relations/{model}/{key}")
	}
	return model, key, nil
}

// getRelations answers GET /api/relations/{model}/{key}: the platforms of the record whose
// unique identifier field has the value key.
func (a *Agent) getRelations(w http.ResponseWriter, r *http.Request, _ []byte) error {
	rs, err := a.relationsStore()
	if err != nil {
		return err
	}
	model, key, err := relationTarget(r)
	if err != nil {
		return err
	}
	ids, err := rs.Relations(r.Context(), model, key)
	if err != nil {
		return err
	}
	protocol.WriteJSON(w, http.StatusOK, protocol.Relations{PlatformIDs: nonNil(ids)})
	return nil
}

// putRelations answers PUT /api/relations/{model}/{key}: it rewrites the record's
// model_platform rows in one transaction (capture then re-delivers the record: to the
// platforms it gained and keeps, and as should_delete to those it lost) and answers with
// the relations as stored. Every platform must be one of the state in force.
func (a *Agent) putRelations(w http.ResponseWriter, r *http.Request, body []byte) error {
	rs, err := a.relationsStore()
	if err != nil {
		return err
	}
	model, key, err := relationTarget(r)
	if err != nil {
		return err
	}
	var in protocol.Relations
	if err := protocol.DecodeStrict(body, &in); err != nil {
		return err
	}
	known := map[int64]bool{}
	for _, p := range a.current().Platforms {
		known[p.ID] = true
	}
	for _, id := range in.PlatformIDs {
		switch {
		case id <= 0:
			return protocol.Errorf(protocol.CodeBadRequest, "platform_ids: %d is not a platform id", id)
		case !known[id]:
			return protocol.Errorf(protocol.CodeBadRequest,
				"platform_ids: platform %d is not one of the platforms this agent knows (Sync Platforms first)", id)
		}
	}
	ids := slices.Compact(slices.Sorted(slices.Values(in.PlatformIDs)))
	stored, err := rs.SetRelations(r.Context(), model, key, ids)
	if err != nil {
		return err
	}
	a.log.Info("platform relations set", "model", model, "platform_ids", stored)
	protocol.WriteJSON(w, http.StatusOK, protocol.Relations{PlatformIDs: nonNil(stored)})
	return nil
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}
