// Package lock is the locked/unlocked state machine of the sesame agent and
// the in-memory handling of the secrets it guards.
//
// A [Locker] keeps the lock passphrase only as a salted argon2id verifier.
// From the same argon2id output it derives an X25519 key pair and keeps only
// the public half, so it can seal secrets at any time (an idle timer, the lid
// closing) without holding anything that could open them: sealing is an
// ephemeral X25519 exchange with that public key followed by
// XChaCha20-Poly1305. Only the right passphrase, through argon2id again,
// yields the private half that opens the [Vault].
//
// The package does no socket I/O and knows nothing of the agent protocol.
// Whoever owns plaintext secrets (the agent's keyring, the Kerberos ticket
// cache) registers as a [Holder]: on lock it hands its secrets to a Vault
// and wipes its own copies; on unlock it gets the plaintexts back.
//
// Go's garbage collector does not clear freed memory, and the crypto
// libraries make internal copies of keys (for example the FIPS key values
// cached beside crypto/rsa, crypto/ecdsa and crypto/ed25519 keys). [Do] runs
// a function under runtime/secret when the program is built with
// GOEXPERIMENT=runtimesecret, so that every heap allocation made inside it
// is zeroed when freed and its stack and registers are erased on return;
// parse and use private keys inside Do, and [Wipe] them before dropping them.
package lock
