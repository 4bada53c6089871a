package io.cameleer.agent.camel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;

import org.junit.jupiter.api.Test;

class CursorTest {
    @Test
    void routesLeftInAnyOrder() {
        Cursor c = new Cursor();
        c.entered("outer", 1);
        c.entered("inner", 2);
        c.entered("outer", 3);
        c.entered("last", 4);
        assertEquals(3, c.left("outer"), "the innermost entry of a route entered twice");
        assertEquals(2, c.left("inner"));
        assertEquals(Cursor.NOT_ENTERED, c.left("inner"));
        assertEquals(4, c.left("last"));
        assertEquals(1, c.left("outer"));
        assertEquals(Cursor.NOT_ENTERED, c.left("outer"));
    }

    @Test
    void copiesKeepTheirOwnState() {
        Cursor c = new Cursor();
        c.node = 3;
        c.correlation = "C";
        c.entered("r", 7);
        Cursor copy = c.safeCopy();
        assertNotSame(c, copy);
        copy.node = 5;
        copy.entered("s", 8);
        assertEquals(3, c.node);
        assertEquals("C", copy.correlation);
        assertEquals(Cursor.NOT_ENTERED, c.left("s"), "a copy's routes are its own");
        assertEquals(7, copy.left("r"), "a copy is still in the routes it was copied in");
        assertEquals(7, c.left("r"));
    }
}
