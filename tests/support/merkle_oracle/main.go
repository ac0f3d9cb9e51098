// merkle-oracle: checks Sechex Ledger's Merkle proofs with the reference Go implementation,
// github.com/transparency-dev/merkle (RFC 6962 hashing, RFC 9162 proof verification), so the
// ledger's proofs are shown to be what an independent verifier accepts, not just what its own
// verifier accepts.
//
// Input (stdin): a JSON array of proofs in the ledger's format (ledger/proof.h: inclusion proofs
// with seq, treeSize, record, leafHash, rootHash, proof; consistency proofs with from, to,
// fromRoot, toRoot, proof). Output (stdout): one line per proof, "ok" or "fail: <reason>", in
// input order. The leaf hash is recomputed here from the record bytes. Exit 0 unless the input
// could not be read.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

type item struct {
	Seq      *uint64  `json:"seq"`
	TreeSize uint64   `json:"treeSize"`
	Record   string   `json:"record"`
	LeafHash string   `json:"leafHash"`
	RootHash string   `json:"rootHash"`
	From     uint64   `json:"from"`
	To       uint64   `json:"to"`
	FromRoot string   `json:"fromRoot"`
	ToRoot   string   `json:"toRoot"`
	Proof    []string `json:"proof"`
}

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

func check(it item) error {
	path := make([][]byte, len(it.Proof))
	for i, p := range it.Proof {
		path[i] = unhex(p)
	}
	h := rfc6962.DefaultHasher
	if it.Seq != nil {
		record, err := base64.StdEncoding.DecodeString(it.Record)
		if err != nil {
			return fmt.Errorf("record is not base64: %v", err)
		}
		leaf := h.HashLeaf(record)
		if !bytes.Equal(leaf, unhex(it.LeafHash)) {
			return fmt.Errorf("leaf hash differs from HashLeaf(record)")
		}
		return proof.VerifyInclusion(h, *it.Seq, it.TreeSize, leaf, path, unhex(it.RootHash))
	}
	return proof.VerifyConsistency(h, it.From, it.To, path, unhex(it.FromRoot), unhex(it.ToRoot))
}

func main() {
	var items []item
	if err := json.NewDecoder(os.Stdin).Decode(&items); err != nil {
		fmt.Fprintln(os.Stderr, "merkle-oracle: cannot read input:", err)
		os.Exit(2)
	}
	for _, it := range items {
		if err := check(it); err != nil {
			// One line per proof: the reference errors span several lines.
			fmt.Printf("fail: %q\n", err.Error())
		} else {
			fmt.Println("ok")
		}
	}
}
