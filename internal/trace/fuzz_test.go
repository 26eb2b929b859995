package trace

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that the record parser never panics and that every record
// it accepts survives a write/read round trip unchanged. Run it briefly with
//
//	go test ./internal/trace -run '^$' -fuzz FuzzParse -fuzztime 10s
//
// Seeds: every line of the sample traces plus hand-made edge cases.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "fixtures", "traces", "*.jsonl"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<24)
		for n := 0; sc.Scan() && n < 8; n++ { // a few lines per file keep the corpus small
			f.Add(append([]byte(nil), sc.Bytes()...))
		}
	}
	f.Add([]byte(good))
	f.Add([]byte(`{"prompt_id":"p","phase":"decode12","layer":0,"head":-1,"stage":"x_norm","pos_id":0,"seq_len_used":0,"dtype":"bf16","shape":[0],"values":[]}`))
	f.Add([]byte(`{"prompt_id":"p","phase":"reference","layer":1,"head":3,"stage":"kv_cache","pos_id":0,"seq_len_used":1,"dtype":"f32","shape":[1,3],"values":["NaN","+Inf","-Inf"],"mode":"isolated"}`))
	f.Add([]byte(`{"shape":[9223372036854775807,2],"values":[1e400]}`))
	f.Add([]byte("{}\n{\"values\":null}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err == nil {
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatalf("MarshalJSON of accepted record: %v", err)
			}
			r2, err := ParseRecord(b)
			if err != nil {
				t.Fatalf("re-parse of %s: %v", b, err)
			}
			b2, _ := r2.MarshalJSON()
			if !bytes.Equal(b, b2) {
				t.Fatalf("round trip changed the record:\n%s\n%s", b, b2)
			}
		}
		// The Reader over the same bytes as a multi-line file must not panic either.
		_, _ = NewReader(bytes.NewReader(data), "fuzz").ReadAll()
	})
}
