// Command echo is the TCP echo server of Hangar's test image: each
// connection gets back the first line it sends, and is then closed, so that
// a plain `echo hi | nc HOST PORT` in a job ends by itself.
package main

import (
	"bufio"
	"flag"
	"log"
	"net"
	"time"
)

func main() {
	addr := flag.String("listen", ":7777", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("echo: %v", err)
	}
	log.Printf("echo: listening on %s", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			log.Fatalf("echo: accept: %v", err)
		}
		go serve(conn)
	}
}

// serve writes the first line read from conn back to it, then closes it.
func serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	conn.Write([]byte(line))
}
