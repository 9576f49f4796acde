package bus

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// clientKind is which go-redis client a URL asks for.
type clientKind int

const (
	kindSingle clientKind = iota
	kindSentinel
	kindCluster
)

// classifyURL returns the kind of client rawURL asks for and the URL as
// go-redis's parsers expect it (the +sentinel/+cluster scheme suffix removed).
func classifyURL(rawURL string) (clientKind, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// The parse error would repeat the URL, password included.
		return 0, "", fmt.Errorf("not a valid URL")
	}
	scheme, variant, _ := strings.Cut(u.Scheme, "+")
	switch scheme {
	case "redis", "rediss":
	case "unix":
		if variant != "" {
			return 0, "", fmt.Errorf("scheme %q: unix sockets take no +%s", u.Scheme, variant)
		}
		return kindSingle, rawURL, nil
	default:
		return 0, "", fmt.Errorf("scheme %q: want redis, rediss, unix, redis+sentinel or redis+cluster",
			u.Scheme)
	}
	u.Scheme = scheme
	q := u.Query()
	switch variant {
	case "sentinel":
		return kindSentinel, u.String(), nil
	case "cluster":
		return kindCluster, u.String(), nil
	case "":
		switch {
		case q.Has("master_name"):
			return kindSentinel, u.String(), nil
		case q.Has("addr"):
			return kindCluster, u.String(), nil
		}
		return kindSingle, u.String(), nil
	default:
		return 0, "", fmt.Errorf("scheme %q: unknown variant %q", u.Scheme, variant)
	}
}

// newClient returns the client rawURL asks for (see RedisOptions.URL). The
// bus retries by itself, so go-redis's own command retries are turned off:
// a failure reaches the loop that knows what to do about it (the tailer must
// see a dropped connection to check for a stream reset). Context deadlines
// bound socket I/O, so health pings time out.
func newClient(rawURL string) (redis.UniversalClient, error) {
	kind, u, err := classifyURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindSentinel:
		o, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, fmt.Errorf("sentinel URL: %w", err)
		}
		o.MaxRetries = -1
		o.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(o), nil
	case kindCluster:
		o, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("cluster URL: %w", err)
		}
		o.MaxRetries = -1
		o.ContextTimeoutEnabled = true
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis URL: %w", err)
		}
		o.MaxRetries = -1
		o.ContextTimeoutEnabled = true
		return redis.NewClient(o), nil
	}
}
