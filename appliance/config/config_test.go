package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func valid(t *testing.T) Config {
	t.Helper()
	c, err := Default(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c.NodeIP = "192.0.2.10"
	c.NodeName = "node-1"
	return c
}

func TestValidate(t *testing.T) {
	if err := valid(t).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"relative data dir": {func(c *Config) { c.DataDir = "data" }, "absolute"},
		"no node IP":        {func(c *Config) { c.NodeIP = "" }, "IPv4"},
		"IPv6 node IP":      {func(c *Config) { c.NodeIP = "2001:db8::1" }, "IPv4"},
		"port zero":         {func(c *Config) { c.HTTPPort = 0 }, "out of range"},
		"port too high":     {func(c *Config) { c.HTTPSPort = 70000 }, "out of range"},
		"same ports":        {func(c *Config) { c.HTTPSPort = c.HTTPPort }, "both"},
		"upper-case name":   {func(c *Config) { c.NodeName = "Node" }, "lower case"},
		"tiny spool":        {func(c *Config) { c.SpoolMaxBytes = 1000 }, "at least 1 MiB"},
		"originals age":     {func(c *Config) { c.OriginalsMaxAge = "a week" }, "positive duration"},
	} {
		c := valid(t)
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line with %q", name, err, tc.want)
		}
	}
}

func TestBoundsDefault(t *testing.T) {
	c := valid(t)
	if c.SpoolBytes() != DefaultSpoolMaxBytes || c.OriginalsBytes() != DefaultOriginalsMaxBytes || c.OriginalsAge() != DefaultOriginalsMaxAge {
		t.Errorf("defaults: %d %d %v", c.SpoolBytes(), c.OriginalsBytes(), c.OriginalsAge())
	}
	c.SpoolMaxBytes, c.OriginalsMaxBytes, c.OriginalsMaxAge = 8<<20, 1<<20, "72h"
	if c.SpoolBytes() != 8<<20 || c.OriginalsBytes() != 1<<20 || c.OriginalsAge() != 72*time.Hour {
		t.Errorf("set: %d %d %v", c.SpoolBytes(), c.OriginalsBytes(), c.OriginalsAge())
	}
}

func TestSaveLoad(t *testing.T) {
	c := valid(t)
	c.AppsDomain = "apps.example.com"
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("loaded %+v, saved %+v", got, c)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("empty dir: %v, want ErrNotInstalled", err)
	}
}
