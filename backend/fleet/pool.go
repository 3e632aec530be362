package fleet

import "sync"

// clientPool keeps one Client per platform, so that connections to an agent are reused
// from one run or poll to the next. A client is replaced when the platform's URL, pinned
// fingerprint or tokens change.
type clientPool struct {
	template ClientOptions

	mu      sync.Mutex
	clients map[int64]*pooledClient
}

type pooledClient struct {
	url, fingerprint, syncToken, platformToken string
	client                                     *Client
}

func newClientPool(template ClientOptions) *clientPool {
	return &clientPool{template: template, clients: map[int64]*pooledClient{}}
}

// get returns the client of platform p with the given tokens.
func (p *clientPool) get(fp FleetPlatform, syncToken, platformToken string) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.clients[fp.ID]; e != nil {
		if e.url == fp.AgentURL && e.fingerprint == fp.TLSFingerprint && e.syncToken == syncToken &&
			e.platformToken == platformToken && e.client.currentToken() == platformToken {
			return e.client, nil
		}
		e.client.Close()
		delete(p.clients, fp.ID)
	}
	opts := p.template
	opts.URL, opts.Fingerprint = fp.AgentURL, fp.TLSFingerprint
	opts.SyncToken, opts.PlatformToken = syncToken, platformToken
	c, err := NewClient(opts)
	if err != nil {
		return nil, err
	}
	p.clients[fp.ID] = &pooledClient{
		url: fp.AgentURL, fingerprint: fp.TLSFingerprint, syncToken: syncToken, platformToken: platformToken,
		client: c,
	}
	return c, nil
}

// retain drops the clients of platforms that are no longer in the fleet.
func (p *clientPool) retain(f Fleet) {
	keep := make(map[int64]bool, len(f.Platforms))
	for _, pl := range f.Platforms {
		keep[pl.ID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.clients {
		if !keep[id] {
			e.client.Close()
			delete(p.clients, id)
		}
	}
}

// closeAll drops every client.
func (p *clientPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, e := range p.clients {
		e.client.Close()
		delete(p.clients, id)
	}
}
