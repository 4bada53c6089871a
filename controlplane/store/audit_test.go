package store

import (
	"path/filepath"
	"testing"
	"time"
)

func TestAuditKeepsTheLastAndPages(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 7; i++ {
		if _, err := s.AppendAudit(AuditRecord{Tenant: "acme", Time: time.Now(), Action: "POST x", Status: 200 + i}, 5); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AppendAudit(AuditRecord{Action: "POST /api/v1/tenants", Status: 201}, 5); err != nil {
		t.Fatal(err)
	}
	all, err := s.Audit("acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].ID != 3 || all[0].Status != 202 || all[4].ID != 7 {
		t.Fatalf("kept %+v, want records 3 to 7", all)
	}
	page, _ := s.Audit("acme", 4, 2)
	if len(page) != 2 || page[0].ID != 5 || page[1].ID != 6 {
		t.Errorf("after 4, 2 of them: %+v", page)
	}
	newest, _ := s.AuditNewest("acme", 0, 2)
	if len(newest) != 2 || newest[0].ID != 7 || newest[1].ID != 6 {
		t.Errorf("the newest 2: %+v", newest)
	}
	older, _ := s.AuditNewest("acme", 6, 100)
	if len(older) != 3 || older[0].ID != 5 || older[2].ID != 3 {
		t.Errorf("before 6: %+v", older)
	}
	if past, _ := s.AuditNewest("acme", 99, 100); len(past) != 5 || past[0].ID != 7 || past[4].ID != 3 {
		t.Errorf("before 99: %+v", past)
	}
	if none, _ := s.AuditNewest("acme", 3, 100); len(none) != 0 {
		t.Errorf("before the oldest kept: %+v", none)
	}
	cp, _ := s.Audit("", 0, 100)
	if len(cp) != 1 || cp[0].Action != "POST /api/v1/tenants" {
		t.Errorf("the control plane's log: %+v", cp)
	}
	if none, err := s.Audit("globex", 0, 100); err != nil || len(none) != 0 {
		t.Errorf("a tenant with no log: %v %v", none, err)
	}
}
