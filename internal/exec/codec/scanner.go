package codec

// Scanner decodes one document piece by piece, for a caller that keeps a top-level object in
// a form of its own (the expr engine's document) while the values in it come out as from
// [Decode]. It interns object keys as a [Decoder] does. The zero value is ready to use; it is
// not safe for concurrent use.
type Scanner struct{ d decoder }

// Reset starts scanning raw, which must stay unchanged until Release.
func (s *Scanner) Reset(raw []byte) {
	d := &s.d
	if d.keys == nil {
		d.keys = make(map[string]string)
	}
	d.data, d.pos, d.nkey = raw, 0, 0
}

// Release drops the document and the values of unfinished objects an error left behind.
func (s *Scanner) Release() { s.d.release() }

// Peek skips white space and returns the next byte, 0 at the end.
func (s *Scanner) Peek() byte {
	d := &s.d
	d.skipSpace()
	if d.pos >= len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// Document decodes the whole document, as [Decode] does.
func (s *Scanner) Document() (any, error) { return s.d.document() }

// Members decodes the object at the position ('{'): for each member it decodes the key and
// calls member with it, positioned at the value, which member decodes (Value or Number).
func (s *Scanner) Members(member func(key string) error) error { return s.d.members(member) }

// AtNumber reports whether a number starts at the position.
func (s *Scanner) AtNumber() bool {
	d := &s.d
	return d.pos < len(d.data) && (d.data[d.pos] == '-' || isDigit(d.data[d.pos]))
}

// Number decodes the number at the position without boxing it.
func (s *Scanner) Number() (Num, error) { return s.d.numberNum() }

// Value decodes the value at the position, a member of a top-level object.
func (s *Scanner) Value() (any, error) { return s.d.value(1) }

// End checks that nothing but white space follows.
func (s *Scanner) End() error { return s.d.end() }
