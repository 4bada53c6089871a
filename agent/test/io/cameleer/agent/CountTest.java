package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class CountTest {
    @Test
    void bucketsAsApiBucketComputesThem() {
        // Values of Go's api.Bucket.
        long[][] cases = {{0, 0}, {1, 0}, {2, 8}, {3, 12}, {4, 16}, {1000, 79}, {1024, 80}, {1025, 80}, {1_000_000, 159}, {1L << 40, 320}};
        for (long[] c : cases) {
            assertEquals(c[1], Count.bucket(c[0]), "bucket of " + c[0]);
        }
    }

    @Test
    void sparseJson() {
        Count c = new Count();
        c.add(2, false);
        c.add(3, true);
        c.add(2, false);
        StringBuilder b = new StringBuilder("{");
        c.json(b);
        assertEquals("{\"count\":3,\"failures\":1,\"sum\":7,\"buckets\":[[8,2],[12,1]]", b.toString());
    }
}
