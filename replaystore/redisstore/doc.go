// Package redisstore is a token.ReplayStore backed by Redis, for relying
// services that run several replicas or must remember used tokens across
// their own restarts.
//
// Each Consume is one atomic command,
//
//	SET <KeyPrefix><hash of "iss jti"> 1 NX PXAT <exp+MaxLeeway+margin, ms>
//
// so two replicas racing on one token can never both win: Redis executes
// commands one at a time and NX lets only the first SET create the key. The
// key carries its own expiry, token.ReplayMargin (2 min) after the token
// could last verify at any replica (exp + token.MaxLeeway), so Redis forgets
// it only once no replica can accept the token, whatever its leeway, even one
// whose clock lags Redis's, and nothing needs sweeping.
//
// ConsumeUnlessRevoked (revocation.ConsumeGuard), which broker.RelyingParty
// uses when the store is both its replay store and its revocation Sharer,
// does the SET inside one script that first refuses a token whose shared
// revocation mark exists: one round trip per token instead of two. The
// mark's name carries the replay key as its hash tag, so the two keys share
// a Redis Cluster hash slot; every other command touches a single key.
//
// The store fails closed. A Redis that does not answer within Config.Timeout,
// refuses the connection or replies with an error makes Consume return that
// error, and token.Verifier turns it into token.ReasonUnavailable: the
// token is refused, never accepted unchecked.
//
// The store does not make Redis durable. What survives a Redis restart or a
// failover depends on how Redis is run; docs/STORES.md says which setting
// gives which guarantee. By default the store sends no WAIT, so a failover
// can lose acknowledged consumes that had not reached a replica; with
// Config.WaitReplicas (the URL's wait_replicas and wait_timeout) each
// consume waits, in its own round trip, for replicas to acknowledge it and
// fails closed (ErrNotReplicated) when they do not in time.
//
// # Connection URLs
//
// Config.URL takes the URL forms go-redis v9 parses; the query parameters
// decide the client, as redis.NewUniversalClient would:
//
//	redis://[[user]:password@]host[:port][/db]      one server (redis.ParseURL)
//	rediss://...                                     the same over TLS
//	unix://[[user]:password@]/path/to/socket?db=N    one server on a Unix socket
//	redis://[:password@]sentinel:26379/db?master_name=mymaster&addr=sentinel2:26379
//	                                                 Sentinel (redis.ParseFailoverURL):
//	                                                 userinfo authenticates to the
//	                                                 sentinels, ?password= to the master
//	redis://[:password@]node1:6379?addr=node2:6379&addr=node3:6379
//	                                                 Cluster (redis.ParseClusterURL)
//
// A URL with master_name is a Sentinel URL; otherwise one with at least one
// addr parameter is a Cluster URL (seed nodes; a cluster has only database
// 0, so a path naming another is refused); anything else names one server.
// The store's own wait_replicas=N and wait_timeout=50ms set
// Config.WaitReplicas and Config.WaitTimeout (not with Cluster). Other
// go-redis query options (dial_timeout, pool_size, ...) pass through.
// Options that send commands to replicas (read_only, replica_only,
// route_by_latency, route_randomly) are refused: a replica may not yet hold a
// consume or revocation its master acknowledged.
// A caller that needs something else builds its own client and sets
// Config.Client.
//
// Passwords in the URL never appear in errors returned by New.
//
// # Revocation
//
// MarkRevoked and IsRevoked record revocations on the same Redis under a
// separate prefix, so every replica sees a revocation made by any of them.
// A token's mark is written under two names, the one ConsumeUnlessRevoked
// reads and the one releases before it read, so old and new replicas
// agree during a rolling upgrade.
//
// # Completions
//
// MarkDone and IsDone record completed work (SERVER2's tasks) on the same
// Redis under a third prefix, with the same atomic SET NX PXAT as Consume:
// of racing completions of one key, on any replica, exactly one succeeds.
//
// Redis 6.2 or later is required (PXAT); MarkRevoked needs 7.0 (PEXPIREAT GT).
package redisstore
