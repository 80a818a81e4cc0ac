package mvcc

import (
	"fmt"
	"testing"
)

func BenchmarkPut(b *testing.B) {
	db, _ := newTestDB(b)
	s := newTestStore(b, db)
	keys := make([][]byte, 10000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/registry/pods/default/pod-%05d", i)
	}
	val := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w := s.Write()
		w.Put(keys[i%len(keys)], val, 0)
		if _, _, err := w.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRange(b *testing.B) {
	db, _ := newTestDB(b)
	s := newTestStore(b, db)
	const n = 10000
	w := s.Write()
	for i := range n {
		w.Put(fmt.Appendf(nil, "/registry/pods/ns%02d/pod-%05d", i%100, i), make([]byte, 256), 0)
	}
	if _, _, err := w.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := fmt.Appendf(nil, "/registry/pods/ns%02d/pod-%05d", i%100, i%n)
			res, err := s.Range(k, nil, RangeOptions{})
			if err != nil || len(res.KVs) != 1 {
				b.Fatal(err, res)
			}
		}
	})
	b.Run("prefix100", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := fmt.Appendf(nil, "/registry/pods/ns%02d/", i%100)
			end := fmt.Appendf(nil, "/registry/pods/ns%02d0", i%100)
			res, err := s.Range(k, end, RangeOptions{})
			if err != nil || len(res.KVs) != 100 {
				b.Fatal(err, res)
			}
		}
	})
	b.Run("count-all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			res, err := s.Range([]byte{0}, []byte{0}, RangeOptions{CountOnly: true})
			if err != nil || res.Count != n {
				b.Fatal(err, res)
			}
		}
	})
}
