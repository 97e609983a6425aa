package keychain

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// KeyPrefix starts the name of an SSH key entry: "ssh-key/SHA256:…".
const KeyPrefix = "ssh-key/"

// KeyInfo describes a stored key without its private half.
type KeyInfo struct {
	Fingerprint string // "SHA256:…", as ssh-keygen -l and ssh-add -l print it
	Type        string // public key algorithm, e.g. "ssh-ed25519"
	Bits        int    // key size as ssh-keygen reports it
	Comment     string
	Added       time.Time
	PublicKey   ssh.PublicKey
	// Certificate is the OpenSSH certificate stored with the key, or nil.
	Certificate *ssh.Certificate
}

// keyRecord is the stored value of an SSH key entry. The private key is
// OpenSSH PEM without a passphrase of its own: the store around it is the
// encryption, and the agent must be able to load it unattended.
type keyRecord struct {
	Version     int       `json:"v"`
	Fingerprint string    `json:"fingerprint"`
	Type        string    `json:"type"`
	Bits        int       `json:"bits"`
	Comment     string    `json:"comment"`
	Added       time.Time `json:"added"`
	Public      string    `json:"public"`                // authorized_keys form
	Private     string    `json:"private"`               // "-----BEGIN OPENSSH PRIVATE KEY-----…"
	Certificate string    `json:"certificate,omitempty"` // authorized_keys form
}

// normalizeKey turns what ssh.ParseRawPrivateKey returns into the forms
// ssh.MarshalPrivateKey accepts (it wants ed25519 keys by value).
func normalizeKey(raw any) any {
	if k, ok := raw.(*ed25519.PrivateKey); ok && k != nil {
		return *k
	}
	return raw
}

// AddKey stores a private key (an *rsa.PrivateKey, *ecdsa.PrivateKey or
// ed25519.PrivateKey, as returned by ssh.ParseRawPrivateKey) with its
// comment. Storing a key that is already there replaces its comment and
// keeps its original date.
func (k *Keychain) AddKey(raw any, comment string) (KeyInfo, error) {
	return k.AddKeyCert(raw, nil, comment)
}

// AddKeyCert is AddKey with an OpenSSH certificate for the key (nil for
// none), which LoadKeys then returns as a second identity, the way ssh-add
// loads FILE and FILE-cert.pub.
func (k *Keychain) AddKeyCert(raw any, cert *ssh.Certificate, comment string) (KeyInfo, error) {
	raw = normalizeKey(raw)
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("unsupported private key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(raw.(crypto.PrivateKey), comment)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("unsupported private key: %w", err)
	}
	pemBytes := pem.EncodeToMemory(block)
	defer wipe(pemBytes)
	wipe(block.Bytes)
	pub := signer.PublicKey()
	if cert != nil && ssh.FingerprintSHA256(cert.Key) != ssh.FingerprintSHA256(pub) {
		return KeyInfo{}, errors.New("certificate is for another key")
	}
	info := keyInfoFor(pub, comment, time.Now().UTC().Truncate(time.Second))
	info.Certificate = cert
	name := KeyPrefix + info.Fingerprint
	if old, err := k.Get(name); err == nil {
		var rec keyRecord
		if json.Unmarshal(old, &rec) == nil && !rec.Added.IsZero() {
			info.Added = rec.Added
		}
		wipe(old)
	} else if !errors.Is(err, ErrNotFound) {
		return KeyInfo{}, err
	}
	rec := keyRecord{
		Version: 1, Fingerprint: info.Fingerprint, Type: info.Type, Bits: info.Bits,
		Comment: comment, Added: info.Added,
		Public:  strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		Private: string(pemBytes),
	}
	if cert != nil {
		rec.Certificate = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return KeyInfo{}, err
	}
	defer wipe(val)
	if err := k.Set(name, val); err != nil {
		return KeyInfo{}, err
	}
	return info, nil
}

func keyInfoFor(pub ssh.PublicKey, comment string, added time.Time) KeyInfo {
	return KeyInfo{
		Fingerprint: ssh.FingerprintSHA256(pub),
		Type:        pub.Type(),
		Bits:        keyBits(pub),
		Comment:     comment,
		Added:       added,
		PublicKey:   pub,
	}
}

// keyBits reports the size the way ssh-keygen -l does.
func keyBits(pub ssh.PublicKey) int {
	cpk, ok := pub.(ssh.CryptoPublicKey)
	if !ok {
		return 0
	}
	switch k := cpk.CryptoPublicKey().(type) {
	case interface{ Size() int }: // *rsa.PublicKey
		return k.Size() * 8
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519:
		return 256
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoSKECDSA256:
		return 256
	case ssh.KeyAlgoECDSA384:
		return 384
	case ssh.KeyAlgoECDSA521:
		return 521
	}
	return 0
}

// record reads and checks one key entry.
func (k *Keychain) record(name string) (keyRecord, ssh.PublicKey, *ssh.Certificate, error) {
	val, err := k.Get(name)
	if err != nil {
		return keyRecord{}, nil, nil, err
	}
	defer wipe(val)
	var rec keyRecord
	if err := json.Unmarshal(val, &rec); err != nil {
		return keyRecord{}, nil, nil, fmt.Errorf("stored key %s is damaged: %w", name, err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Public))
	if err != nil {
		return keyRecord{}, nil, nil, fmt.Errorf("stored key %s is damaged: %w", name, err)
	}
	if KeyPrefix+ssh.FingerprintSHA256(pub) != name {
		return keyRecord{}, nil, nil, fmt.Errorf("stored key %s is damaged: fingerprint mismatch", name)
	}
	var cert *ssh.Certificate
	if rec.Certificate != "" {
		cpub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rec.Certificate))
		c, ok := cpub.(*ssh.Certificate)
		if err != nil || !ok || ssh.FingerprintSHA256(c.Key) != ssh.FingerprintSHA256(pub) {
			return keyRecord{}, nil, nil, fmt.Errorf("stored key %s is damaged: bad certificate", name)
		}
		cert = c
	}
	return rec, pub, cert, nil
}

// Keys lists the stored SSH keys, in fingerprint order. A damaged entry is
// reported in the error while the others are still returned.
func (k *Keychain) Keys() ([]KeyInfo, error) {
	names, err := k.List()
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, KeyPrefix) {
			continue
		}
		rec, pub, cert, err := k.record(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rec.Private = ""
		ki := keyInfoFor(pub, rec.Comment, rec.Added)
		ki.Certificate = cert
		out = append(out, ki)
	}
	return out, errors.Join(errs...)
}

// LoadKeys returns every stored key, ready for agent.Agent.Add, with its
// comment; a key stored with a certificate comes twice, plain and with the
// certificate, as ssh-add adds them. A damaged entry is reported in the error while the others are
// still returned, so that one bad key never keeps the rest out of the
// agent. The caller owns the private keys and should drop them when added.
func (k *Keychain) LoadKeys() ([]agent.AddedKey, error) {
	names, err := k.List()
	if err != nil {
		return nil, err
	}
	var out []agent.AddedKey
	var errs []error
	for _, n := range names {
		if !strings.HasPrefix(n, KeyPrefix) {
			continue
		}
		rec, pub, cert, err := k.record(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		raw, err := ssh.ParseRawPrivateKey([]byte(rec.Private))
		if err != nil {
			errs = append(errs, fmt.Errorf("stored key %s is damaged: %w", n, err))
			continue
		}
		raw = normalizeKey(raw)
		if s, err := ssh.NewSignerFromKey(raw); err != nil || ssh.FingerprintSHA256(s.PublicKey()) != ssh.FingerprintSHA256(pub) {
			errs = append(errs, fmt.Errorf("stored key %s is damaged: private and public halves differ", n))
			continue
		}
		out = append(out, agent.AddedKey{PrivateKey: raw, Comment: rec.Comment})
		if cert != nil {
			out = append(out, agent.AddedKey{PrivateKey: raw, Certificate: cert, Comment: rec.Comment})
		}
	}
	return out, errors.Join(errs...)
}

// LoadKeys opens the keychain described by opts, returns every stored key
// and closes it again. This is what the agent calls when it starts unlocked
// or is unlocked: with the vault backend, opts.Passphrase must answer
// without a terminal — the agent passes StaticPassphrase(the passphrase it
// was given at unlock), or PassphraseFromEnv() / PassphraseFromFile when it
// was started with one; the OS stores need no passphrase. A vault that does
// not exist yet yields no keys and no error, without asking.
func LoadKeys(opts Options) ([]agent.AddedKey, error) {
	kc, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	return kc.LoadKeys()
}

// FindKeys returns the stored keys that selector names: a "SHA256:"
// fingerprint, the path of a public key file (or of a private key file, or
// one next to which FILE.pub exists), or else a comment, matched exactly.
func (k *Keychain) FindKeys(selector string) ([]KeyInfo, error) {
	fp, err := SelectorFingerprint(selector)
	if err != nil {
		return nil, err
	}
	keys, err := k.Keys()
	if err != nil && keys == nil {
		return nil, err
	}
	var out []KeyInfo
	for _, ki := range keys {
		if (fp != "" && ki.Fingerprint == fp) || (fp == "" && ki.Comment == selector) {
			out = append(out, ki)
		}
	}
	return out, nil
}

// SelectorFingerprint resolves a key selector to a fingerprint when it is
// a fingerprint or names a key file; it returns "" for a comment.
func SelectorFingerprint(selector string) (string, error) {
	if strings.HasPrefix(selector, "SHA256:") {
		return selector, nil
	}
	if selector == "" {
		return "", errors.New("empty key selector")
	}
	data, err := readKeyFile(selector)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // a comment
	}
	if err != nil {
		return "", err
	}
	if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
		return ssh.FingerprintSHA256(pub), nil
	}
	if pubData, err := readKeyFile(selector + ".pub"); err == nil {
		if pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData); err == nil {
			return ssh.FingerprintSHA256(pub), nil
		}
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) && missing.PublicKey != nil {
		return ssh.FingerprintSHA256(missing.PublicKey), nil
	}
	if err == nil {
		if s, err := ssh.NewSignerFromKey(normalizeKey(raw)); err == nil {
			return ssh.FingerprintSHA256(s.PublicKey()), nil
		}
	}
	return "", fmt.Errorf("%s: not a public or private key file", selector)
}

// RemoveKey deletes the one stored key that selector names (see FindKeys)
// and returns what it was.
func (k *Keychain) RemoveKey(selector string) (KeyInfo, error) {
	found, err := k.FindKeys(selector)
	if err != nil {
		return KeyInfo{}, err
	}
	switch len(found) {
	case 0:
		return KeyInfo{}, withHint(fmt.Errorf("no stored key matches %q: %w", selector, ErrNotFound),
			"`sesame keys` lists the stored keys")
	case 1:
	default:
		return KeyInfo{}, withHint(fmt.Errorf("%q %w (%d)", selector, ErrAmbiguous, len(found)),
			"name the key by its SHA256: fingerprint")
	}
	if err := k.Remove(KeyPrefix + found[0].Fingerprint); err != nil {
		return KeyInfo{}, err
	}
	return found[0], nil
}

// maxKeyFile bounds a key file read into memory (an RSA-16384 key in PEM is
// about 12 KiB).
const maxKeyFile = 1 << 20

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%s: %w (larger than %d bytes)", path, ErrNotAKey, maxKeyFile)
	}
	return data, nil
}

// ReadPrivateKeyFile parses a private key file the way ssh-add does. When
// the key is encrypted, askPassphrase is called once (it gets the file
// name and should prompt "Enter passphrase for FILE"); a wrong passphrase
// is an error wrapping ErrWrongKeyPassphrase. The comment is the one in
// FILE.pub when that file holds the same key, else the file name, as
// ssh-add shows it.
func ReadPrivateKeyFile(path string, askPassphrase func(path string) ([]byte, error)) (raw any, comment string, err error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, "", err
	}
	defer wipe(data)
	raw, err = ssh.ParseRawPrivateKey(data)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if askPassphrase == nil {
			return nil, "", fmt.Errorf("%s: key is encrypted and no passphrase source is available", path)
		}
		pw, perr := askPassphrase(path)
		if perr != nil {
			return nil, "", perr
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(data, pw)
		wipe(pw)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, "", fmt.Errorf("%s: %w", path, ErrWrongKeyPassphrase)
		}
	}
	if err != nil {
		if _, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
			return nil, "", withHint(fmt.Errorf("%s: %w: it is a public key", path, ErrNotAKey),
				"give the private key file (without .pub)")
		}
		// x/crypto's reason ("ssh: no key found") names its own parser;
		// say what a key file must be instead.
		return nil, "", withHint(fmt.Errorf("%s: %w", path, ErrNotAKey),
			"give an OpenSSH, PEM or PKCS#8 private key file")
	}
	raw = normalizeKey(raw)
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		// x/crypto's reason ("ssh: no key found") names its own parser;
		// say what a key file must be instead.
		return nil, "", withHint(fmt.Errorf("%s: %w", path, ErrNotAKey),
			"give an OpenSSH, PEM or PKCS#8 private key file")
	}
	comment = path
	if pubData, err := readKeyFile(path + ".pub"); err == nil {
		if pub, c, _, _, err := ssh.ParseAuthorizedKey(pubData); err == nil && c != "" &&
			ssh.FingerprintSHA256(pub) == ssh.FingerprintSHA256(signer.PublicKey()) {
			comment = c
		}
	}
	return raw, comment, nil
}

// ReadCertificateFile returns the certificate in FILE-cert.pub for the key
// in FILE, as ssh-add looks for it, or nil when there is none. A
// certificate file for another key is an error.
func ReadCertificateFile(path string, key any) (*ssh.Certificate, error) {
	data, err := readKeyFile(path + "-cert.pub")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	cert, ok := pub.(*ssh.Certificate)
	if err != nil || !ok {
		return nil, fmt.Errorf("%s-cert.pub: not an OpenSSH certificate", path)
	}
	signer, err := ssh.NewSignerFromKey(normalizeKey(key))
	if err != nil {
		return nil, err
	}
	if ssh.FingerprintSHA256(cert.Key) != ssh.FingerprintSHA256(signer.PublicKey()) {
		return nil, fmt.Errorf("%s-cert.pub: certificate is for another key", path)
	}
	return cert, nil
}
