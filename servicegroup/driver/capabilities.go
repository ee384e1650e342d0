package driver

import (
	"bytes"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// EncodeCapabilities encodes caps as tooz does (msgpack, strings as str and
// byte slices as bin). Nil or empty caps encode to nil: "no capabilities".
func EncodeCapabilities(caps map[string]any) ([]byte, error) {
	if len(caps) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true) // same caps, same bytes: writers can skip no-op updates
	if err := enc.Encode(caps); err != nil {
		return nil, fmt.Errorf("encode capabilities: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeCapabilities decodes what EncodeCapabilities (or tooz) wrote, into
// plain values: map[string]any, []any, string, []byte, bool, nil, float64,
// int64 (uint64 only above math.MaxInt64). Nil or empty input gives an empty
// map. Anything else (e.g. a msgpack value that is not a map) is an error.
func DecodeCapabilities(b []byte) (map[string]any, error) {
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	dec := msgpack.GetDecoder() // a pooled decoder: GetAll decodes one per member
	dec.Reset(bytes.NewReader(b))
	v, err := dec.DecodeInterface() // not Loose: that turns bin into str
	msgpack.PutDecoder(dec)
	if err != nil {
		return nil, fmt.Errorf("decode capabilities: %w", err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	n, err := normalize(v)
	if err != nil {
		return nil, fmt.Errorf("decode capabilities: %w", err)
	}
	m, ok := n.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode capabilities: a %T, not a map", n)
	}
	return m, nil
}

func normalize(v any) (any, error) {
	switch x := v.(type) {
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint:
		return normalize(uint64(x))
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
		return x, nil
	case float32:
		return float64(x), nil
	case []any: // normalized in place: the decoder's own, fresh value
		for i, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
		return x, nil
	case map[string]any:
		for k, e := range x {
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
		return x, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case []byte:
				ks = string(kk)
			default:
				ks = fmt.Sprint(kk)
			}
			n, err := normalize(e)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	default:
		return v, nil
	}
}
