package stack

import "testing"

func TestFreePortNeverHandsOutAReservedPort(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("FreePort: %v", err)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		// A second reservation of the same port (as another process
		// would try) fails while this one holds it.
		if ok, err := reservePort(port); err != nil || ok {
			t.Fatalf("reservePort(%d) again = %v, %v; want false", port, ok, err)
		}
	}
}
