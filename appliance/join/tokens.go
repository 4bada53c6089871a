package join

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cameleer/cameleer/appliance/kube"
	"github.com/cameleer/cameleer/internal/httpjson"
)

// Tokens are a cluster's join tokens, each a Secret in kube-system: in the
// cluster's datastore, where a later second controller finds them too.
type Tokens struct {
	API *kube.Client
	// CAHash is the SHA-256 of the cluster CA's DER certificate, and
	// Server the controller's cluster address: what tokens carry.
	CAHash [sha256.Size]byte
	Server string
}

const (
	namespace   = "kube-system"
	secretType  = "cameleer.io/join-token"
	tokenLabel  = "cameleer.io/join-token"
	secretsPath = "/api/v1/namespaces/" + namespace + "/secrets"
)

// Record is what the cluster keeps of a token.
type Record struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	// UsedBy is the node that joined with it, at UsedAt.
	UsedBy string    `json:"usedBy,omitempty"`
	UsedAt time.Time `json:"usedAt,omitzero"`

	secretHash string
	// usedKey is the SHA-256 of the public key the node joined with: the
	// same node asking again with the same key (its answer was lost) is
	// answered again.
	usedKey         string
	resourceVersion string
}

// State says whether r can still be used at now.
func (r Record) State(now time.Time) string {
	switch {
	case r.UsedBy != "":
		return "used by " + r.UsedBy
	case !now.Before(r.Expires):
		return "expired"
	}
	return "valid"
}

type secret struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		Labels          map[string]string `json:"labels,omitempty"`
		ResourceVersion string            `json:"resourceVersion,omitempty"`
	} `json:"metadata"`
	Type string `json:"type"`
	// Data's values are base64 on the wire; encoding/json does that for
	// []byte.
	Data map[string][]byte `json:"data"`
}

func secretName(id string) string { return "cameleer-join-" + id }

func (r Record) secret() secret {
	s := secret{APIVersion: "v1", Kind: "Secret", Type: secretType}
	s.Metadata.Name, s.Metadata.Namespace = secretName(r.ID), namespace
	s.Metadata.Labels = map[string]string{tokenLabel: "true"}
	s.Metadata.ResourceVersion = r.resourceVersion
	s.Data = map[string][]byte{
		"id":           []byte(r.ID),
		"role":         []byte(r.Role),
		"secretSHA256": []byte(r.secretHash),
		"created":      []byte(r.Created.UTC().Format(time.RFC3339)),
		"expires":      []byte(r.Expires.UTC().Format(time.RFC3339)),
	}
	if r.Description != "" {
		s.Data["description"] = []byte(r.Description)
	}
	if r.UsedBy != "" {
		s.Data["usedBy"] = []byte(r.UsedBy)
		s.Data["usedAt"] = []byte(r.UsedAt.UTC().Format(time.RFC3339))
		s.Data["usedKeySHA256"] = []byte(r.usedKey)
	}
	return s
}

func recordOf(s secret) Record {
	d := func(k string) string { return string(s.Data[k]) }
	t := func(k string) time.Time { v, _ := time.Parse(time.RFC3339, d(k)); return v }
	return Record{ID: d("id"), Role: d("role"), Description: d("description"), Created: t("created"), Expires: t("expires"),
		UsedBy: d("usedBy"), UsedAt: t("usedAt"), secretHash: d("secretSHA256"), usedKey: d("usedKeySHA256"),
		resourceVersion: s.Metadata.ResourceVersion}
}

// Create makes a token for a node of role, valid for ttl.
func (ts Tokens) Create(ctx context.Context, role string, ttl time.Duration, description string, now time.Time) (Token, error) {
	if ttl <= 0 {
		return Token{}, fmt.Errorf("a token's time to live must be positive, not %s", ttl)
	}
	tok := newToken(role, ts.CAHash, ts.Server)
	r := Record{ID: tok.ID, Role: role, Description: description, Created: now, Expires: now.Add(ttl), secretHash: tok.SecretHash()}
	if err := ts.API.Do(ctx, http.MethodPost, secretsPath, "", r.secret(), nil); err != nil {
		return Token{}, fmt.Errorf("store the token: %w", err)
	}
	return tok, nil
}

// List is every token the cluster keeps, oldest first.
func (ts Tokens) List(ctx context.Context) ([]Record, error) {
	var l struct {
		Items []secret `json:"items"`
	}
	if err := ts.API.Get(ctx, secretsPath+"?labelSelector="+tokenLabel+"%3Dtrue", &l); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := make([]Record, 0, len(l.Items))
	for _, s := range l.Items {
		if s.Type == secretType {
			out = append(out, recordOf(s))
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// ErrUnknown is a token the cluster does not keep.
var ErrUnknown = errors.New("unknown token")

// Revoke removes a token: it can no longer be used.
func (ts Tokens) Revoke(ctx context.Context, id string) error {
	err := ts.API.Do(ctx, http.MethodDelete, secretsPath+"/"+secretName(id), "", nil, nil)
	if isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%w %s: see `cameleer token list`", ErrUnknown, id)
	}
	return err
}

func (ts Tokens) get(ctx context.Context, id string) (Record, error) {
	var s secret
	err := ts.API.Get(ctx, secretsPath+"/"+secretName(id), &s)
	if isStatus(err, http.StatusNotFound) || (err == nil && s.Type != secretType) {
		return Record{}, ErrUnknown
	}
	return recordOf(s), err
}

// RefusedError is a token refused for good: unknown, revoked, expired,
// used, for another role. Its text is shown to the joining node.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// check tells whether tok may join node, whose key hashes to keyHash, at
// now: again is a node that joined with it already and lost the answer.
func check(r Record, tok Token, node, keyHash string, now time.Time) (again bool, err error) {
	refuse := func(format string, a ...any) (bool, error) {
		return false, &RefusedError{Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case r.secretHash != tok.SecretHash() || r.Role != tok.Role:
		// Said as an unknown token is: nothing to learn by guessing.
		return refuse("token %s is not known to this cluster (revoked, or another cluster's)", tok.ID)
	case r.UsedBy == node && r.usedKey == keyHash:
		return true, nil
	case r.UsedBy != "":
		return refuse("token %s was used by node %s at %s: a token adds one node; make another with `cameleer token create`", tok.ID, r.UsedBy, r.UsedAt.UTC().Format(time.RFC3339))
	case !now.Before(r.Expires):
		return refuse("token %s expired at %s: make another with `cameleer token create`", tok.ID, r.Expires.UTC().Format(time.RFC3339))
	}
	return false, nil
}

// use marks r, read and checked by the caller, used by node, whose key
// hashes to keyHash. Two nodes racing for one token: the update of the one
// that comes second fails on the resource version it read, and it is
// refused.
func (ts Tokens) use(ctx context.Context, r Record, node, keyHash string, now time.Time) error {
	r.UsedBy, r.UsedAt, r.usedKey = node, now, keyHash
	err := ts.API.Do(ctx, http.MethodPut, secretsPath+"/"+secretName(r.ID), "", r.secret(), nil)
	if isStatus(err, http.StatusConflict) {
		return &RefusedError{Reason: fmt.Sprintf("token %s was used by another node just now", r.ID)}
	}
	return err
}

func isStatus(err error, status int) bool {
	var se *httpjson.StatusError
	return errors.As(err, &se) && se.Status == status
}

// DescribeExpiry says when a token expires, for lists.
func DescribeExpiry(r Record, now time.Time) string {
	if !now.Before(r.Expires) {
		return "expired " + r.Expires.UTC().Format(time.RFC3339)
	}
	return strings.TrimSuffix(r.Expires.Sub(now).Round(time.Minute).String(), "0s")
}
