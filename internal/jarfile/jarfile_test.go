package jarfile

import "testing"

func TestMainAttributes(t *testing.T) {
	m := MainAttributes([]byte("Manifest-Version: 1.0\r\nMain-Class: com.example.very.long.packa\r\n ge.App\r\nStart-Class: a.B\r\n\r\nName: x/\r\nMain-Class: not.This\r\n"))
	if m["Main-Class"] != "com.example.very.long.package.App" || m["Start-Class"] != "a.B" || m["Manifest-Version"] != "1.0" {
		t.Errorf("attributes %v", m)
	}
	if len(MainAttributes(nil)) != 0 {
		t.Error("an empty manifest has attributes")
	}
}
