"""The store's staff list: who may log in at its tills (novapos.wire.staff), kept in the state folder for
offline logins and followed from the hub."""
