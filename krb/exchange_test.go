package krb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"

	"github.com/sesame-ssh/sesame/internal/testbed"
)

// Over UDP (MIT's default for small requests), with a dead KDC listed
// first: the login fails over to the live one.
func TestExchangeUDPAndFailover(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	cl.Config.LibDefaults.UDPPreferenceLimit = 1465
	dead := fmt.Sprintf("127.0.0.1:%d", testbed.FreePort(t))
	for i := range cl.Config.Realms {
		cl.Config.Realms[i].KDC = append([]string{dead}, cl.Config.Realms[i].KDC...)
	}
	cl.Timeout = 2 * time.Second
	if _, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)}); err != nil {
		t.Fatal(err)
	}
	kdc.Stop()
	_, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	var ue *UnreachableError
	if !errors.As(err, &ue) || len(ue.Tried) != 4 || !strings.Contains(err.Error(), dead+"/udp") || !strings.Contains(err.Error(), kdc.Addr()+"/tcp") {
		t.Fatalf("err = %v, want both KDCs named, over udp and tcp", err)
	}
}

// A KDC reachable only over TCP (UDP blocked) is still used.
func TestExchangeUDPBlockedFallsBackToTCP(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.Stop()
	conf, err := os.ReadFile(kdc.KDCConf)
	if err != nil {
		t.Fatal(err)
	}
	// Move the KDC's UDP listener elsewhere: its port answers TCP only.
	conf = []byte(strings.Replace(string(conf), fmt.Sprintf("kdc_ports = %d", kdc.Port), fmt.Sprintf("kdc_ports = %d", testbed.FreePort(t)), 1))
	if err := os.WriteFile(kdc.KDCConf, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	kdc.Start()
	cl.Config.LibDefaults.UDPPreferenceLimit = 1465
	if _, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)}); err != nil {
		t.Fatal(err)
	}
	if n := kdc.LogCount("PREAUTH_FAILED"); n != 0 {
		t.Errorf("%d failed pre-authentications", n)
	}
}

// A KDC whose UDP replies are capped answers KRB_ERR_RESPONSE_TOO_BIG; the
// request is repeated over TCP to the same KDC.
func TestExchangeResponseTooBigFallsBackToTCP(t *testing.T) {
	kdc, cl := exchangeRealm(t, testbed.KDCOptions{})
	kdc.Stop()
	conf, err := os.ReadFile(kdc.KDCConf)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), "[kdcdefaults]\n", "[kdcdefaults]\n\tkdc_max_dgram_reply_size = 300\n", 1))
	if err := os.WriteFile(kdc.KDCConf, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	kdc.Start()
	cl.Config.LibDefaults.UDPPreferenceLimit = 1465
	var log bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	cc, err := cl.Login(context.Background(), LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Tickets()) != 1 || len(cc.Tickets()[0].Ticket) < 300 {
		t.Fatalf("unexpected cache %+v", cc)
	}
	if !strings.Contains(log.String(), "too big for udp") || !strings.Contains(log.String(), "proto=tcp") {
		t.Fatalf("no tcp retry in the debug log:\n%s", log.String())
	}
}

// A cancelled context stops the exchange at once.
func TestExchangeCancel(t *testing.T) {
	_, cl := exchangeRealm(t, testbed.KDCOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := cl.Login(ctx, LoginOptions{Principal: "alice", Password: []byte(testPassword)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// KDC replies are network input: no byte string may panic the decoders.
func FuzzKDCReply(f *testing.F) {
	f.Add([]byte{0x7e, 0x03, 0x30, 0x01, 0x00})
	f.Add([]byte{0x6b, 0x80, 0x00, 0x00})
	f.Add([]byte{0x6d, 0x00})
	f.Add([]byte("\x30\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ke *KDCError
		_ = parseKRBError(b, "kdc", &ke)
		if rep, _, _, err := parseKDCRep(b, asnAppTag.ASREP); err == nil {
			_ = methodData(rep.EncPart.Cipher)
			saltFor(rep.PAData, 18)
			firstInfoEtype(rep.PAData, []int32{17, 18})
		}
		_, _, _, _ = parseKDCRep(b, asnAppTag.TGSREP)
		_, _ = Credential{Ticket: b}.TicketEncType()
		pas := methodData(b)
		saltFor(pas, 18)
		firstInfoEtype(pas, []int32{17, 18, 23})
	})
}
