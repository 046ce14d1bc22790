package exprengine

import (
	"strconv"
	"strings"

	"github.com/expr-lang/expr/vm/runtime"
)

// keyCache is the engine's one cache of the keys a handler builds: the short strings it
// makes with + and string(i), remembered from run to run, and where each is in the input
// document's shape. Handlers build the same keys on every run ("cpu_percent-" + string(i),
// "avg-util-cpu" + i + "-60sec") and look them up in their input; without the cache each
// costs two allocations (the string and its interface box) and a map lookup for its place
// in the input, a large share of a small handler's run. Both paths use it: the VM through
// the rewritten + and string(x) (vars.Add, vars.String), the fast path at every + with a
// constant operand and every input[key] and key in input (fastkeys.go).
//
// An entry is one string, how it was made, and where it is in the input shape it names. The
// entries made from two strings (a key looked up alone is itself + "") sit in a table found
// by hashing the operands' bytes and are compared by value, so an entry is never wrong: a
// hash that collides only costs a miss. The entries made from a constant and an int i in
// [0, maxKeyInt) (string(i) is "" + string(i)), a handler's keys from a loop index, sit in
// a row per constant, found by i alone: neither string(i) nor the key is made or hashed. The
// fast path gives each constant its row when it compiles the program (keyConst.row).
//
// What bounds it: the table's keyEntries places of 64 bytes (made on the first key kept; a
// full set gives up its entries in turn), at most maxKeyRows rows of maxKeyInt entries
// (each grown as far as its largest i), strings of at most maxKeyLen bytes (longer ones are
// made and looked up without it), and copies of the operands it does not own (it keeps the
// program's constants and its own strings as they are), so that an entry never pins a large
// input string a key was cut from: under 1 MiB per run state at worst, some 50 KiB for the
// classic handler's keys. One cache per pooled run state: no locking. A hit
// charges the run's byte budget what making the string would (the VM's vars.Add and
// vars.String charge alike, hit or miss), so a run is charged the same bytes on either path
// and whatever the cache holds.
type keyCache struct {
	table *keyTable
	rows  [][]keyEntry
	next  uint8 // the way a full set gives up next
	lib   *library
	mem   *runBudget
}

const (
	keySets    = 128
	keyWays    = 4
	keyEntries = keySets * keyWays
	keyShift   = 64 - 7 // log2(keySets)
	maxKeyLen  = 64
	maxKeyInt  = 256
	maxKeyRows = 16
	keyRowStep = 32 // a row grows by this many entries
)

type keyTable [keySets][keyWays]keyEntry

// keyEntry is 64 bytes, a cache line: a lookup reads one line per place it tries.
type keyEntry struct {
	hash        uint32 // in the table, the low half of the entry's hash: odd; 0 for a free place
	at          int32  // val's index in shape, -1 when shape lacks it
	left, right string
	val         any // left + right; nil for a free place in a row
	shape       *docShape
}

// keyConst is the constant operand of a + site the fast path compiled, its hash, and its
// row for the ints it is joined with (-1 for none: past maxKeyRows, the table serves it).
type keyConst struct {
	s    string
	hash uint64
	left bool // the constant is the left operand
	row  int
}

// add is the rewritten + (vars.Add): runtime.Add, but for two strings within maxKeyLen the
// cached result.
func (c *keyCache) add(a, b any) any {
	x, ok := a.(string)
	if !ok {
		return runtime.Add(a, b)
	}
	y, ok := b.(string)
	if !ok {
		return runtime.Add(a, b)
	}
	n := len(x) + len(y)
	if n > maxKeyLen {
		return c.concat(x, y)
	}
	h := pairHash(strHash(x), strHash(y))
	if e := c.find(h, x, y); e != nil {
		c.mem.charge("+", n)
		return e.val
	}
	v := c.concat(x, y)
	return c.keep(h, strings.Clone(x), strings.Clone(y), v).val
}

// toString is string(x) (vars.String): for an int in [0, maxKeyInt) the cached string.
func (c *keyCache) toString(x any) any {
	if i, ok := x.(int); ok && uint(i) < maxKeyInt {
		e := c.intEntry(0, i)
		if e.val == nil {
			s := strconv.Itoa(i)
			*e = keyEntry{right: s, val: s, at: -1}
		}
		c.mem.charge("string", len(e.right))
		return e.val
	}
	s := c.lib.toString(x) // bounded by MaxStringBytes: charged once made
	if _, same := x.(string); !same {
		c.mem.charge("string", len(s))
	}
	return s
}

// withString is k + s (or s + k): the entry, or nil and the string when it is too long to
// keep. The run is charged as vars.Add charges it. owned: s is the cache's own (an entry's
// val), which an entry may keep as it is.
func (c *keyCache) withString(k *keyConst, s string, owned bool) (*keyEntry, any) {
	x, y := k.s, s
	if !k.left {
		x, y = s, k.s
	}
	n := len(x) + len(y)
	if n > maxKeyLen {
		return nil, c.concat(x, y)
	}
	hs := strHash(s)
	h := pairHash(k.hash, hs)
	if !k.left {
		h = pairHash(hs, k.hash)
	}
	e := c.find(h, x, y)
	if e != nil {
		c.mem.charge("+", n)
		return e, e.val
	}
	v := c.concat(x, y)
	if !owned {
		s = strings.Clone(s)
	}
	if k.left {
		y = s
	} else {
		x = s
	}
	e = c.keep(h, x, y, v)
	return e, e.val
}

// withInt is k + string(i) (or string(i) + k) for 0 <= i < maxKeyInt: the entry, or nil and
// the string when it is too long to keep. The run is charged as vars.String and vars.Add
// charge it.
func (c *keyCache) withInt(k *keyConst, i int) (*keyEntry, any) {
	if k.row < 0 {
		return c.withString(k, c.toString(i).(string), true)
	}
	if e := c.intHit(k, i); e != nil {
		c.mem.charge("+", k.intBytes(e))
		return e, e.val
	}
	s := c.toString(i).(string)
	x, y := k.s, s
	if !k.left {
		x, y = s, k.s
	}
	v := c.concat(x, y)
	if len(v) > maxKeyLen {
		return nil, v
	}
	e := c.intEntry(k.row, i) // again: string(i) may have grown the rows
	*e = keyEntry{left: x, right: y, val: v, at: -1}
	return e, e.val
}

// intHit is withInt's entry when the cache holds it, else nil; small enough to be inlined
// into the fast path's key sites, which then charge the run intBytes as withInt does.
func (c *keyCache) intHit(k *keyConst, i int) *keyEntry {
	if uint(k.row) < uint(len(c.rows)) {
		if r := c.rows[k.row]; uint(i) < uint(len(r)) && r[i].val != nil {
			return &r[i]
		}
	}
	return nil
}

// intBytes is what the VM charges making e, k + string(i) or string(i) + k: string(i),
// then the +.
func (k *keyConst) intBytes(e *keyEntry) int { return 2*(len(e.left)+len(e.right)) - len(k.s) }

// intEntry is the place of i in row, made as needed.
func (c *keyCache) intEntry(row, i int) *keyEntry {
	if row < len(c.rows) && i < len(c.rows[row]) {
		return &c.rows[row][i]
	}
	for row >= len(c.rows) {
		c.rows = append(c.rows, nil)
	}
	r := c.rows[row]
	n := min(maxKeyInt, (i+keyRowStep)/keyRowStep*keyRowStep)
	c.rows[row] = append(r, make([]keyEntry, n-len(r))...)
	return &c.rows[row][i]
}

// index is key's index in shape, -1 when shape lacks it, h its strHash. owned: key is the
// program's constant, which an entry may keep as it is.
func (c *keyCache) index(shape *docShape, key string, h uint64, owned bool) int {
	if len(key) > maxKeyLen {
		return shape.find(key)
	}
	h = pairHash(h, emptyHash)
	e := c.find(h, key, "")
	if e == nil {
		if !owned {
			key = strings.Clone(key)
		}
		e = c.keep(h, key, "", key)
	}
	return e.index(shape)
}

// index is the entry's string's index in shape, -1 when shape lacks it.
func (e *keyEntry) index(shape *docShape) int {
	if e.shape != shape {
		e.shape, e.at = shape, int32(shape.find(e.val.(string)))
	}
	return int(e.at)
}

// concat is x + y as the VM's + makes it: refused past MaxStringBytes, charged to the run.
func (c *keyCache) concat(x, y string) string {
	n := len(x) + len(y)
	if n > c.lib.lim.MaxStringBytes {
		panic(c.lib.tooLong("+", n))
	}
	c.mem.charge("+", n)
	return x + y
}

// find is the entry of left + right, or nil.
func (c *keyCache) find(h uint64, left, right string) *keyEntry {
	if c.table == nil {
		return nil
	}
	set := &c.table[h>>keyShift]
	for i := range set {
		if e := &set[i]; e.hash == uint32(h) && e.left == left && e.right == right {
			return e
		}
	}
	return nil
}

// keep stores v, made as left + right, in a free place of its set or in the place the set
// gives up next, and returns its entry. The operands are kept as they are: callers pass
// copies of what they do not own (they own the program's constants and the cache's strings).
func (c *keyCache) keep(h uint64, left, right string, v string) *keyEntry {
	if c.table == nil {
		c.table = new(keyTable)
	}
	set := &c.table[h>>keyShift]
	e := &set[c.next%keyWays]
	for i := range set {
		if set[i].hash == 0 {
			e = &set[i]
			break
		}
	}
	c.next++
	if left == "" || right == "" {
		v = left + right // x + "" is x itself, which may be a slice of a large string: the kept copy
	}
	*e = keyEntry{hash: uint32(h), left: left, right: right, val: v, at: -1}
	return e
}

// strHash hashes s's bytes eight at a time (a few nanoseconds for a key, where the runtime's
// map hash takes twice as long); its top bits pick a set.
func strHash(s string) uint64 {
	n := len(s)
	h := uint64(n) * 0x9e3779b97f4a7c15
	switch {
	case n > 16:
		for i := 0; i+8 < n; i += 8 {
			h = mix(h ^ load64(s, i))
		}
		h ^= load64(s, n-8)
	case n >= 8:
		h ^= load64(s, 0)*0xff51afd7ed558ccd ^ load64(s, n-8)
	case n >= 4:
		h ^= uint64(load32(s, 0)) | uint64(load32(s, n-4))<<32
	case n > 0:
		h ^= uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16
	}
	return mix(h)
}

// emptyHash is strHash("").
const emptyHash = 0

// pairHash is the hash of an entry from its operands': odd, so that no entry's is 0.
func pairHash(left, right uint64) uint64 { return (left*0xbf58476d1ce4e5b9 ^ right) | 1 }

// mix is splitmix64's finaliser.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// load64 and load32 read s's bytes from i, little-endian; the compiler makes each one load.
func load64(s string, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

func load32(s string, i int) uint32 {
	_ = s[i+3]
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
}
