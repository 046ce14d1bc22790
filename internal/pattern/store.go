package pattern

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/eventrt/eventrt/internal/state"
)

// commitScript writes one key's run atomically: the output, the env changes and the
// bookkeeping, after checking the slot's fence when the run is fenced. A script rather than
// MULTI/EXEC because a cluster client cannot pipeline transactions of different slots in one
// DoMulti (MULTI and EXEC carry no key), while scripts route by their keys: the commits of a
// whole batch go out in one round trip per node. The output goes first, so that a write that
// fails (XADD onto a key of another type) aborts the script before anything else is written.
//
// KEYS: state, meta, output (state again for publish), fence (state again when unfenced).
// ARGV: 1 output mode (set, xadd, publish, "" for no output), 2 output, 3 at, 4 handler,
// 5 input id, 6 token ("" unfenced), 7 state TTL in ms ("0": none), 8 xadd MAXLEN ("0":
// none), 9 input key, 10 channel, 11 number n of env fields to delete, the n fields, then
// field/value pairs to set.
// Reply: 1 committed, 0 fenced (nothing written).
var commitScript = newScript(`
if ARGV[6] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[6] then return 0 end
local m = ARGV[1]
if m == 'set' then
  redis.call('SET', KEYS[3], ARGV[2])
elseif m == 'xadd' then
  if ARGV[8] ~= '0' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', 'data', ARGV[2], 'key', ARGV[9])
  else
    redis.call('XADD', KEYS[3], '*', 'data', ARGV[2], 'key', ARGV[9])
  end
elseif m == 'publish' then
  redis.call('PUBLISH', ARGV[10], ARGV[2])
end
` + state.LuaChunked + `local ndel = tonumber(ARGV[11])
chunked('HDEL', KEYS[1], 12, 11 + ndel)
chunked('HSET', KEYS[1], 12 + ndel, #ARGV)
redis.call('HSET', KEYS[2], 'last_execution', ARGV[3], 'handler', ARGV[4], 'last_input', ARGV[5])
if ARGV[6] ~= '' then redis.call('HSET', KEYS[2], 'fence', ARGV[6]) end
redis.call('HINCRBY', KEYS[2], 'executions', 1)
redis.call('HDEL', KEYS[2], 'attempt_input', 'attempts')
if ARGV[7] ~= '0' then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
return 1
`)

// countScript counts a run of a value in the key's meta hash before it starts (package
// state's attempt bookkeeping: a count left behind is a run that killed the process).
var countScript = newScript(state.AttemptCountScript())

// claimScript makes a replica's tenure of a partition the one allowed to commit keys of one
// slot: the slot's fence takes the tenure's token unless a later tenure (a larger token)
// claimed it already. Sent before the first read of the slot's keys in a tenure, on the
// same connection, it orders every later commit of an earlier tenure after it: refused.
//
// KEYS: fence. ARGV: token. Reply: 1 claimed, 0 a later tenure holds the slot.
var claimScript = newScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local tok = tonumber(ARGV[1])
if cur > tok then return 0 end
if cur < tok then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
`)

// script is a Lua script sent with EVALSHA, and EVAL for the replies that were NOSCRIPT.
type script struct{ src, sha string }

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{src: src, sha: hex.EncodeToString(sum[:])}
}

func (s script) evalsha(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Evalsha().Sha1(s.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

func (s script) eval(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Eval().Script(s.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// scriptCall is one script invocation of a pipeline.
type scriptCall struct {
	s          script
	keys, args []string
}

// doScripts sends calls in one DoMulti with EVALSHA and sends the ones a node did not know
// (NOSCRIPT: a restarted or new node) again with EVAL, which also caches the script there.
// Other commands (plain reads) may precede them in pre; their replies come first.
func doScripts(ctx context.Context, c rueidis.Client, pre rueidis.Commands, calls []scriptCall) []rueidis.RedisResult {
	b := c.B()
	cmds := append(pre, make(rueidis.Commands, 0, len(calls))...)
	for _, sc := range calls {
		cmds = append(cmds, sc.s.evalsha(b, sc.keys, sc.args))
	}
	res := c.DoMulti(ctx, cmds...)
	var again rueidis.Commands
	var at []int
	for i, sc := range calls {
		if re, ok := rueidis.IsRedisErr(res[len(pre)+i].Error()); ok && re.IsNoScript() {
			again = append(again, sc.s.eval(b, sc.keys, sc.args))
			at = append(at, len(pre)+i)
		}
	}
	if len(again) > 0 {
		for j, r := range c.DoMulti(ctx, again...) {
			res[at[j]] = r
		}
	}
	return res
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
