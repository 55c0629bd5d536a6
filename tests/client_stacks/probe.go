// Go crypto/tls client for the client-stack tests (standard library only, as CockroachDB itself
// uses): PostgreSQL's SSLRequest, a verify-full TLS handshake with client.<user>.crt/.key, then a
// startup message whose answer proves the server accepted the certificate (under TLS 1.3 a
// refusal only shows after the handshake). Files are read anew for every connection from the
// directory the `current` link points at. Prints "ok NODE" or "fail NODE: why" per try.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

func startup(user string) []byte {
	body := []byte{0, 3, 0, 0}
	for _, kv := range [][2]string{{"user", user}, {"database", "postgres"}} {
		body = append(body, kv[0]...)
		body = append(body, 0)
		body = append(body, kv[1]...)
		body = append(body, 0)
	}
	body = append(body, 0)
	msg := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(msg, uint32(4+len(body)))
	return append(msg, body...)
}

func try(current, user, node string) error {
	dir, err := filepath.EvalSymlinks(current)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate in ca.crt")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client."+user+".crt"), filepath.Join(dir, "client."+user+".key"))
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(node)
	if err != nil {
		return err
	}
	raw, err := net.DialTimeout("tcp", node, 5*time.Second)
	if err != nil {
		return err
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	request := make([]byte, 8)
	binary.BigEndian.PutUint32(request[0:4], 8)
	binary.BigEndian.PutUint32(request[4:8], 80877103)
	if _, err := raw.Write(request); err != nil {
		return err
	}
	answer := make([]byte, 1)
	if _, err := raw.Read(answer); err != nil || answer[0] != 'S' {
		return fmt.Errorf("server refused SSLRequest (%q, %v)", answer, err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: host})
	if err := conn.Handshake(); err != nil {
		return err
	}
	if _, err := conn.Write(startup(user)); err != nil {
		return err
	}
	kind, err := bufio.NewReader(conn).ReadByte()
	if err != nil {
		return err
	}
	if kind != 'R' {
		return fmt.Errorf("server answered %q instead of an authentication message", kind)
	}
	conn.Write([]byte{'X', 0, 0, 0, 4})
	return nil
}

func main() {
	current, user, nodes := os.Args[1], os.Args[2], os.Args[3:]
	for {
		for _, node := range nodes {
			if err := try(current, user, node); err != nil {
				fmt.Printf("fail %s: %v\n", node, err)
			} else {
				fmt.Printf("ok %s\n", node)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
