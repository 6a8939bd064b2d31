package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/handoffbroker/handoff/broker/revocation"
	"github.com/handoffbroker/handoff/broker/token"
	"github.com/redis/go-redis/v9"
)

// Defaults for Config.
const (
	DefaultKeyPrefix        = "handoff:jti:"
	DefaultRevocationPrefix = "handoff:rev:"
	DefaultCompletionPrefix = "handoff:done:"
	DefaultTimeout          = 200 * time.Millisecond
	// DefaultWaitTimeout is Config.WaitTimeout when WaitReplicas is set.
	DefaultWaitTimeout = 50 * time.Millisecond
)

// MinRetention is the shortest time a consumed key is kept, whatever
// expiresAt says: token.MinReplayRetention, as for every store.
const MinRetention = token.MinReplayRetention

// The operation names passed to Config.Observe.
const (
	OpConsume     = "consume"
	OpMarkRevoked = "mark_revoked"
	OpIsRevoked   = "is_revoked"
	OpMarkDone    = "mark_done"
	OpIsDone      = "is_done"
	OpPing        = "ping"
)

// The values ErrorKind returns for a non-nil error. The set is fixed so it
// can label metrics.
const (
	KindTimeout    = "timeout"
	KindConnection = "connection"
	KindCanceled   = "canceled"
	// KindReplication is ErrNotReplicated: fewer replicas than
	// Config.WaitReplicas acknowledged a write in time.
	KindReplication = "replication"
	KindOther       = "other"
)

// ErrorKinds lists every kind ErrorKind can return for a non-nil error.
var ErrorKinds = []string{KindTimeout, KindConnection, KindCanceled, KindReplication, KindOther}

// ErrNotReplicated is returned (wrapped) by a consume that Redis made but
// fewer than Config.WaitReplicas replicas acknowledged within
// Config.WaitTimeout. The write stays on the master: the token is refused
// now, and as replayed if presented again.
var ErrNotReplicated = errors.New("redisstore: write not acknowledged by enough replicas")

// Config configures a Store.
type Config struct {
	// URL locates Redis; the package documentation lists the forms.
	// Required unless Client is set, and must be empty when it is. Unless
	// the URL sets dialer_retries or max_retries, the client makes one dial
	// attempt per connection and retries a failed command once, so a Redis
	// that refuses connections fails fast instead of using up Timeout.
	URL string
	// Client, when set, is used instead of dialling URL: for callers that
	// built their own client. It should have ContextTimeoutEnabled set, or
	// Timeout is enforced only by the client's own read and write timeouts.
	// Close leaves it open: its owner closes it.
	Client redis.UniversalClient
	// KeyPrefix starts every replay key. It must not contain { or }: a
	// brace would make part of it a Redis Cluster hash tag, moving a
	// token's replay key away from the slot of its revocation mark. Default
	// DefaultKeyPrefix.
	KeyPrefix string
	// RevocationPrefix starts every revocation key; it must differ from
	// KeyPrefix and, as KeyPrefix, must not contain { or }. Default
	// DefaultRevocationPrefix.
	RevocationPrefix string
	// CompletionPrefix starts every completion key (MarkDone); it must
	// differ from KeyPrefix and RevocationPrefix. Default
	// DefaultCompletionPrefix.
	CompletionPrefix string
	// Timeout bounds each operation, retries included. A slower Redis is an
	// error, which the verifier turns into ReasonUnavailable. Default
	// DefaultTimeout.
	Timeout time.Duration
	// WaitReplicas, when positive, makes every consume wait until that many
	// replicas acknowledge it (Redis WAIT, pipelined with the write: one
	// round trip) and fail with ErrNotReplicated, so the verifier refuses
	// the token (ReasonUnavailable), when fewer did within WaitTimeout. It
	// narrows what a failover can lose to consumes not yet answered
	// (docs/STORES.md); it does not close it. Not with a Cluster URL. The
	// URL's wait_replicas query parameter sets it too. Default 0: no WAIT.
	WaitReplicas int
	// WaitTimeout bounds each WAIT; it must be below Timeout. The URL's
	// wait_timeout (a Go duration, "50ms") sets it too. Default
	// DefaultWaitTimeout when WaitReplicas is set.
	WaitTimeout time.Duration
	// Observe, when set, is called after every Redis operation with its
	// name (OpConsume, ...), duration and error. The error is nil whenever
	// Redis answered, a refused replay included; ErrorKind classifies the
	// rest. It must be fast and safe for concurrent use. Default: none.
	Observe func(op string, d time.Duration, err error)
	// Now returns the current time, used to bound expiry times. Default
	// time.Now.
	Now func() time.Time
}

// Store is a token.ReplayStore over Redis. It is safe for concurrent use,
// and several Stores, in one process or many, may share one Redis.
type Store struct {
	cfg       Config
	client    redis.UniversalClient
	ownClient bool
}

var _ revocation.ConsumeGuard = (*Store)(nil)

// New validates cfg, reporting every problem at once, and returns a Store.
// It does not contact Redis; call Ping for that.
func New(cfg Config) (*Store, error) {
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.RevocationPrefix == "" {
		cfg.RevocationPrefix = DefaultRevocationPrefix
	}
	if cfg.CompletionPrefix == "" {
		cfg.CompletionPrefix = DefaultCompletionPrefix
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	var dialURL string
	if cfg.URL != "" {
		var err error
		dialURL, err = takeWaitOptions(&cfg)
		errs = append(errs, err)
	}
	switch {
	case cfg.URL == "" && cfg.Client == nil:
		errs = append(errs, errors.New("URL is required"))
	case cfg.URL != "" && cfg.Client != nil:
		errs = append(errs, errors.New("URL and Client are mutually exclusive"))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, errors.New("negative Timeout"))
	}
	if cfg.WaitReplicas > 0 && cfg.WaitTimeout == 0 {
		cfg.WaitTimeout = DefaultWaitTimeout
	}
	switch {
	case cfg.WaitReplicas < 0:
		errs = append(errs, errors.New("negative WaitReplicas"))
	case cfg.WaitReplicas > 0 && (cfg.WaitTimeout < time.Millisecond || cfg.WaitTimeout >= cfg.Timeout):
		// WAIT 0 would block until the replicas answer, however long.
		errs = append(errs, fmt.Errorf("WaitTimeout %v must be at least 1ms and below Timeout %v", cfg.WaitTimeout, cfg.Timeout))
	case cfg.WaitReplicas == 0 && cfg.WaitTimeout != 0:
		errs = append(errs, errors.New("WaitTimeout needs WaitReplicas"))
	}
	// A brace in a prefix would change which hash slot a key hashes to,
	// and a token's revocation mark must share its replay key's slot.
	for _, p := range []struct{ name, v string }{{"KeyPrefix", cfg.KeyPrefix}, {"RevocationPrefix", cfg.RevocationPrefix}} {
		if strings.ContainsAny(p.v, "{}") {
			errs = append(errs, fmt.Errorf("%s must not contain { or }", p.name))
		}
	}
	// A shared prefix would let a consumed jti read as a revocation, or a
	// revocation entry block a token's first use.
	if cfg.KeyPrefix == cfg.RevocationPrefix {
		errs = append(errs, errors.New("KeyPrefix and RevocationPrefix must differ"))
	}
	// Likewise a completion must not read as a use or a revocation.
	if cfg.CompletionPrefix == cfg.KeyPrefix || cfg.CompletionPrefix == cfg.RevocationPrefix {
		errs = append(errs, errors.New("CompletionPrefix must differ from KeyPrefix and RevocationPrefix"))
	}
	s := &Store{cfg: cfg, client: cfg.Client}
	if cfg.URL != "" {
		c, err := dial(dialURL)
		if err != nil {
			errs = append(errs, err)
		} else {
			s.client, s.ownClient = c, true
		}
	}
	if _, ok := s.client.(*redis.ClusterClient); ok && cfg.WaitReplicas > 0 {
		// A Cluster pipeline would send WAIT, which names no key, to a
		// node other than the one that took the write.
		errs = append(errs, errors.New("WaitReplicas is not supported with Redis Cluster"))
	}
	if err := errors.Join(errs...); err != nil {
		if s.ownClient {
			_ = s.client.Close()
		}
		return nil, fmt.Errorf("redisstore: config: %w", err)
	}
	return s, nil
}

// takeWaitOptions moves the URL's wait_replicas and wait_timeout into
// cfg, unless cfg sets them too, and returns the URL without them for
// go-redis, which does not know them.
func takeWaitOptions(cfg *Config) (string, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return cfg.URL, nil // dial reports it
	}
	q := u.Query()
	if !q.Has("wait_replicas") && !q.Has("wait_timeout") {
		return cfg.URL, nil
	}
	if cfg.WaitReplicas != 0 || cfg.WaitTimeout != 0 {
		return cfg.URL, errors.New("URL: wait_replicas and wait_timeout may not be set with WaitReplicas or WaitTimeout")
	}
	var errs []error
	if v := q.Get("wait_replicas"); q.Has("wait_replicas") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("URL: wait_replicas %q must be a positive integer", v))
		}
		cfg.WaitReplicas = n
	}
	if v := q.Get("wait_timeout"); q.Has("wait_timeout") {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("URL: wait_timeout %q must be a positive duration such as 50ms", v))
		}
		cfg.WaitTimeout = d
	}
	q.Del("wait_replicas")
	q.Del("wait_timeout")
	u.RawQuery = q.Encode()
	return u.String(), errors.Join(errs...)
}

// dial builds the client URL names, without connecting.
func dial(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("URL: %w", redactURLError(err))
	}
	q := u.Query()
	for _, name := range []string{"read_only", "replica_only", "route_by_latency", "route_randomly"} {
		if q.Has(name) {
			return nil, fmt.Errorf("URL: option %s is refused: replicas may lag the master", name)
		}
	}
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("URL (sentinel): %w", redactURLError(err))
		}
		if o.MasterName == "" {
			return nil, errors.New("URL (sentinel): master_name is empty")
		}
		o.ContextTimeoutEnabled = true
		o.DialerRetries, o.MaxRetries = retries(q, o.DialerRetries, o.MaxRetries)
		return redis.NewFailoverClient(o), nil
	case q.Has("addr"):
		if p := u.Path; p != "" && p != "/" && p != "/0" {
			return nil, errors.New("URL (cluster): Redis Cluster has only database 0")
		}
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("URL (cluster): %w", redactURLError(err))
		}
		o.ContextTimeoutEnabled = true
		o.DialerRetries, o.MaxRetries = retries(q, o.DialerRetries, o.MaxRetries)
		return redis.NewClusterClient(o), nil
	default:
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("URL: %w", redactURLError(err))
		}
		o.ContextTimeoutEnabled = true
		o.DialerRetries, o.MaxRetries = retries(q, o.DialerRetries, o.MaxRetries)
		return redis.NewClient(o), nil
	}
}

// retries returns the dial attempts and command retries to use: those the
// URL sets, else one dial attempt per connection and one command retry.
// go-redis's defaults (5 dial attempts 100ms apart, 3 command retries) would
// spend the whole Timeout on a Redis that refuses connections, reporting a
// refusal as a slow timeout. The single retry still covers a pooled
// connection that Redis closed (a restart).
func retries(q url.Values, dialer, command int) (int, int) {
	if !q.Has("dialer_retries") {
		dialer = 1
	}
	if !q.Has("max_retries") {
		command = 1
	}
	return dialer, command
}

// redactURLError drops the URL that *url.Error quotes, password included.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Consume implements token.ReplayStore: it records key as used until
// token.RetainUntil(expiresAt, now) in one atomic SET NX PXAT. It returns
// token.ErrAlreadyUsed when key is already recorded, and a wrapped Redis
// error when Redis cannot tell.
//
// Redis expires the key by its own clock, not the caller's; the
// token.ReplayMargin in the expiresAt a Verifier passes is what covers the
// skew between the two and the time the command takes to arrive.
//
// A Consume that timed out, or whose reply was lost and retried, may still
// have recorded the use: the token is then refused as replayed, never
// accepted twice.
func (s *Store) Consume(ctx context.Context, key string, expiresAt time.Time) error {
	// A PXAT in the past makes Redis drop the key at once, so a second use
	// racing the first would be accepted too: replay through a late or
	// zero expiry.
	expiresAt = token.RetainUntil(expiresAt, s.cfg.Now())
	var ok bool
	err := s.do(ctx, OpConsume, func(ctx context.Context) error {
		var set *redis.StatusCmd
		err := s.write(ctx, func(c redis.Cmdable) redis.Cmder {
			set = c.SetArgs(ctx, s.RedisKey(key), 1, redis.SetArgs{Mode: "NX", ExpireAt: expiresAt})
			return set
		}, func() bool {
			ok = set.Val() == "OK"
			return ok
		})
		if errors.Is(err, redis.Nil) {
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: consume: %w", err)
	case !ok:
		return token.ErrAlreadyUsed
	}
	return nil
}

// consumeUnlessRevoked is ConsumeUnlessRevoked's script: KEYS[1] the
// replay key, then the token's revocation marks in the same keyspace:
// KEYS[2] the mark in the replay key's hash slot and, with a single-node
// client, KEYS[3] its legacy name.
var consumeUnlessRevoked = redis.NewScript(`
if redis.call('EXISTS', unpack(KEYS, 2)) > 0 then
	return -1
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
	return 1
end
return 0
`)

// ConsumeUnlessRevoked implements revocation.ConsumeGuard: in one script,
// one round trip (two on Redis Cluster, below), it refuses with token.ErrMarkedRevoked when the token
// whose replay key is key is marked revoked (MarkRevoked of its
// revocation.SharedKey), recording nothing, and otherwise does what
// Consume does. The mark and the replay key share a hash slot, so it works
// on Redis Cluster. With WaitReplicas, the WAIT rides in the same round
// trip.
//
// The script also reads the mark under the name releases before it wrote
// (docs/STORES.md, Upgrading), so a mark only such a replica wrote is seen
// too. On Redis Cluster (any client but a single-node or Sentinel one)
// that name may lie in another slot: there an EXISTS of it goes first, a
// second round trip, and a mark an old replica writes between the two is
// missed, as that release's own EXISTS-then-SET consume missed it.
func (s *Store) ConsumeUnlessRevoked(ctx context.Context, key string, expiresAt time.Time) error {
	at := token.RetainUntil(expiresAt, s.cfg.Now()).UnixMilli()
	// The mark holds the replay key between its braces: one hash, one
	// string for both keys.
	mark := s.markKey(key)
	keys := make([]string, 2, 3)
	keys[0], keys[1] = mark[len(s.cfg.RevocationPrefix)+1:len(mark)-1], mark
	// Only a single-node client (plain or Sentinel) is sure to have every
	// key the script names in one keyspace.
	_, single := s.client.(*redis.Client)
	if single {
		keys = append(keys, s.legacyMarkKey(key))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := s.start()
	var res int64
	var err error
	if !single {
		var n int64
		if n, err = s.client.Exists(ctx, s.legacyMarkKey(key)).Result(); err == nil && n > 0 {
			res = -1
		}
	}
	switch {
	case err != nil || res == -1:
	case s.cfg.WaitReplicas == 0:
		res, err = consumeUnlessRevoked.Run(ctx, s.client, keys, at).Int64()
	default:
		res, err = s.consumeUnlessRevokedWaiting(ctx, keys, at)
	}
	s.observe(OpConsume, start, err)
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: consume: %w", err)
	case res == -1:
		return token.ErrMarkedRevoked
	case res != 1:
		return token.ErrAlreadyUsed
	}
	return nil
}

// consumeUnlessRevokedWaiting runs the script with a WAIT in the same
// pipeline (write); in a pipeline EVALSHA cannot fall back to EVAL by
// itself, so a NOSCRIPT sends the script's text.
func (s *Store) consumeUnlessRevokedWaiting(ctx context.Context, keys []string, at int64) (int64, error) {
	var res int64
	run := func(eval func(c redis.Cmdable) *redis.Cmd) error {
		var cmd *redis.Cmd
		return s.write(ctx, func(c redis.Cmdable) redis.Cmder {
			cmd = eval(c)
			return cmd
		}, func() bool {
			res, _ = cmd.Int64()
			return res == 1
		})
	}
	err := run(func(c redis.Cmdable) *redis.Cmd {
		return consumeUnlessRevoked.EvalSha(ctx, c, keys, at)
	})
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = run(func(c redis.Cmdable) *redis.Cmd {
			return consumeUnlessRevoked.Eval(ctx, c, keys, at)
		})
	}
	return res, err
}

// write sends the command queue adds, and with WaitReplicas a WAIT in the
// same pipeline: one round trip. wrote reports, once the replies are in,
// whether the command wrote; only then does a short WAIT fail the write
// with ErrNotReplicated.
func (s *Store) write(ctx context.Context, queue func(redis.Cmdable) redis.Cmder, wrote func() bool) error {
	if s.cfg.WaitReplicas == 0 {
		err := queue(s.client).Err()
		wrote()
		return err
	}
	var cmd redis.Cmder
	var wait *redis.Cmd
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmd = queue(p)
		wait = p.Do(ctx, "WAIT", s.cfg.WaitReplicas, s.cfg.WaitTimeout.Milliseconds())
		return nil
	})
	if err := cmd.Err(); err != nil {
		return err
	}
	if !wrote() {
		return nil
	}
	acked, err := wait.Int64()
	switch {
	case err != nil:
		return fmt.Errorf("wait: %w", err)
	case acked < int64(s.cfg.WaitReplicas):
		return fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, acked, s.cfg.WaitReplicas, s.cfg.WaitTimeout)
	}
	return nil
}

// RedisKey returns the Redis key under which Consume records a replay key
// (a token's issuer, a space and its jti), for operators looking one up.
//
// The replay key is hashed: "iss jti" is bounded by the verifier, but
// hashing gives fixed-size keys of plain hex whatever an issuer puts in its
// jti, and keeps issuer URLs and ids out of Redis key listings. 128 bits of
// SHA-256 leave collisions out of reach.
func (s *Store) RedisKey(key string) string { return hashKey(s.cfg.KeyPrefix, key) }

func hashKey(prefix, key string) string {
	return wrapHashKey(prefix, "", key, "")
}

// wrapHashKey returns before + prefix + the hex of key's hash + after in
// one allocation.
func wrapHashKey(before, prefix, key, after string) string {
	sum := sha256.Sum256([]byte(key))
	var h [32]byte
	hex.Encode(h[:], sum[:16])
	return before + prefix + string(h[:]) + after
}

// Ping checks that Redis answers within Timeout, for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	err := s.do(ctx, OpPing, func(ctx context.Context) error {
		return s.client.Ping(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// Close closes the client the Store dialled. A client given in
// Config.Client is left to its owner.
func (s *Store) Close() error {
	if !s.ownClient {
		return nil
	}
	return s.client.Close()
}

func (s *Store) do(ctx context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	start := s.start()
	err := f(ctx)
	s.observe(op, start, err)
	return err
}

// start returns the time an operation starts, for observe; the zero time
// when nothing observes, which spares reading the clock twice per call.
func (s *Store) start() time.Time {
	if s.cfg.Observe == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe reports an operation that began at start to Config.Observe.
func (s *Store) observe(op string, start time.Time, err error) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(op, time.Since(start), err)
	}
}

// ErrorKind classifies an error from a Store for metrics labels: "" for nil,
// otherwise one of ErrorKinds. KindTimeout is a deadline hit (Redis slow or
// unreachable without a reply), KindConnection a refused, reset or closed
// connection, KindCanceled the caller giving up, KindOther anything else,
// Redis error replies included.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	if errors.Is(err, ErrNotReplicated) {
		return KindReplication
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return KindTimeout
	}
	var oe *net.OpError
	if errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolExhausted) {
		return KindConnection
	}
	return KindOther
}
