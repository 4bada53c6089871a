package api

import "testing"

func TestBucket(t *testing.T) {
	for _, d := range []int64{0, 1, 2, 3, 10, 999, 1000, 1001, 123456, 60_000_000} {
		b := Bucket(d)
		if d > 1 && (float64(d) > BucketUpper(b) || float64(d) < BucketUpper(b-1)) {
			t.Errorf("%d µs in bucket %d, which holds (%.1f, %.1f]", d, b, BucketUpper(b-1), BucketUpper(b))
		}
		if up := BucketUpper(b); d > 1 && up > float64(d)*1.091 {
			t.Errorf("bucket %d of %d µs reaches %.1f, over 9 %% above", b, d, up)
		}
	}
	if Bucket(0) != 0 || Bucket(1) != 0 {
		t.Errorf("durations of at most 1 µs are not in bucket 0")
	}
}
