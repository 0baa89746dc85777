package appjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

// The walk checks app.json against the Manifest type before it is decoded,
// token by token, because encoding/json cannot say where a problem is:
// its unknown-field error has no offset, it matches keys case-insensitively
// ("Cron" would pass for "cron"), it takes the last of duplicate keys
// silently, and the offset of its type errors is past the value. The walk
// records where every key and array element begins, so that the checks
// made after decoding can name a line too.

// Position is a place in app.json, 1-based.
type Position struct {
	Line, Column int
}

// positionAt turns a byte offset into a line and a column (in characters).
func positionAt(data []byte, off int) Position {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return Position{Line: line, Column: utf8.RuneCount(before[start:]) + 1}
}

// walker walks the tokens of one document.
type walker struct {
	data []byte
	dec  *json.Decoder
	pos  map[string]int // path -> byte offset where its key or element begins
}

// errAt is an error at a byte offset of the document, made into an
// *Error by Parse.
type errAt struct {
	off    int
	path   string
	reason string
}

func (e *errAt) Error() string { return e.path + ": " + e.reason }

// next returns the byte offset where the next token begins: the decoder's
// offset is the end of the last one, before any separator.
func (w *walker) next() int {
	off := int(w.dec.InputOffset())
	for off < len(w.data) {
		switch w.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// walk reads one value at path, which must fit type t.
func (w *walker) walk(path string, t reflect.Type) error {
	start := w.next()
	tok, err := w.dec.Token()
	if err != nil {
		return syntaxErr(err, w.data)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawType {
		// Not checked: a key pier accepts and ignores. Its contents are
		// still read, to keep the walk in step.
		return w.skip(tok)
	}
	want := kindName(t)
	switch tok := tok.(type) {
	case json.Delim:
		switch {
		case tok == '{' && (t.Kind() == reflect.Struct || t.Kind() == reflect.Map):
			return w.object(path, t)
		case tok == '[' && t.Kind() == reflect.Slice:
			for i := 0; w.dec.More(); i++ {
				p := fmt.Sprintf("%s[%d]", path, i)
				w.pos[p] = w.next()
				if err := w.walk(p, t.Elem()); err != nil {
					return err
				}
			}
			_, err := w.dec.Token()
			return syntaxErr(err, w.data)
		}
		if err := w.skip(tok); err != nil {
			return err
		}
		have := "an object"
		if tok == '[' {
			have = "a list"
		}
		return &errAt{start, path, fmt.Sprintf("want %s, have %s", want, have)}
	case string:
		if t.Kind() == reflect.String {
			return nil
		}
		return &errAt{start, path, fmt.Sprintf("want %s, have the string %q", want, tok)}
	case float64:
		switch t.Kind() {
		case reflect.Int, reflect.Int64:
			if tok != math.Trunc(tok) || math.Abs(tok) > 1<<31 {
				return &errAt{start, path, fmt.Sprintf("want a whole number, have %v", tok)}
			}
			return nil
		}
		return &errAt{start, path, fmt.Sprintf("want %s, have the number %v", want, tok)}
	case bool:
		if t.Kind() == reflect.Bool {
			return nil
		}
		return &errAt{start, path, fmt.Sprintf("want %s, have %v", want, tok)}
	case nil:
		// null leaves the zero value, as encoding/json does.
		return nil
	}
	return &errAt{start, path, fmt.Sprintf("want %s", want)}
}

// object reads the members of an object after its '{'.
func (w *walker) object(path string, t reflect.Type) error {
	seen := map[string]bool{}
	for w.dec.More() {
		kstart := w.next()
		tok, err := w.dec.Token()
		if err != nil {
			return syntaxErr(err, w.data)
		}
		key := tok.(string) // the decoder allows nothing else here
		p := key
		if path != "" {
			p = path + "." + key
		}
		if seen[key] {
			return &errAt{kstart, p, "the key appears twice"}
		}
		seen[key] = true
		w.pos[p] = kstart
		elem := t
		if t.Kind() == reflect.Map {
			elem = t.Elem()
		} else if f, ok := fieldByTag(t, key); ok {
			elem = f.Type
		} else {
			return &errAt{kstart, p, unknownKey(t, key)}
		}
		if err := w.walk(p, elem); err != nil {
			return err
		}
	}
	_, err := w.dec.Token()
	return syntaxErr(err, w.data)
}

// skip reads the rest of a value whose first token was tok.
func (w *walker) skip(tok json.Token) error {
	d, ok := tok.(json.Delim)
	if !ok || d == '}' || d == ']' {
		return nil
	}
	for depth := 1; depth > 0; {
		tok, err := w.dec.Token()
		if err != nil {
			return syntaxErr(err, w.data)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return nil
}

var rawType = reflect.TypeOf(json.RawMessage(nil))

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// unknownKey says what is wrong with a key t does not have: why pier does
// not take it, when it is another platform's, or which keys there are.
func unknownKey(t reflect.Type, key string) string {
	if why, ok := unsupported[t.Name()+"."+key]; ok {
		return "not supported by pier: " + why
	}
	var keys []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return fmt.Sprintf("unknown key (known here: %s)", strings.Join(keys, ", "))
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		return "a list"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

// syntaxErr gives a decoder's error the offset it happened at.
func syntaxErr(err error, data []byte) error {
	var se *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return &errAt{int(se.Offset), "", strings.TrimPrefix(se.Error(), "json: ")}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &errAt{len(data), "", "unexpected end of the file: a bracket or quote is not closed"}
	}
	return err
}
