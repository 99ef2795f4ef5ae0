// Package reconcile matches a payment connector's settlement report —
// what a card acquirer or a PSP says it settled — against what the ledger
// says it should have settled, and reports what matched, what is missing
// from the report, what the report has that the ledger does not, and what
// differs.
//
// A report is parsed into Items by ParseCSV or ParseCamt053; the caller
// builds the Expected entries from its payments and their connector
// references (connector.Result.Ref); Match pairs them into a Report,
// which prints as text (WriteText) or JSON.
//
// Report files are untrusted uploads. The parsers are strict — one line
// or entry that does not parse refuses the whole file with an
// *iotpay.Error EINVALID naming the line — and bounded: FileBytesMax
// bytes, ItemsMax items, RefLenMax bytes a reference, DepthMax elements
// deep. Amounts are decimal text turned into integer minor units with
// the currency's scale ("12.34" EUR is 1234, "1234" JPY is 1234); an
// amount with more decimals than its currency has is refused, and no
// float is ever involved. Every item's amount is positive and at most
// AmountMax: its Kind says the direction.
//
// # CSV reports
//
// A CSV report (RFC 4180, comma separated, UTF-8, a byte order mark
// allowed) starts with a header row naming its columns, in any order.
// Names are matched without regard to case or surrounding spaces, with a
// space read as an underscore and a trailing "(UTC)" dropped, so that
// Stripe's export headers ("Created (UTC)") are understood. Unknown
// columns are ignored; a name may not appear twice. Every row has as many
// cells as the header; cells are trimmed of spaces.
//
//	column      required  aliases                    content
//	reference   yes       source, source_id          the connector's reference (the item's Ref)
//	amount      yes                                  decimal, "12.34"; a leading "-" allowed
//	currency    yes                                  ISO 4217 code, any case ("eur")
//	date        yes       created, available_on      RFC 3339, "YYYY-MM-DD hh:mm:ss" (UTC) or YYYY-MM-DD
//	type        no                                   capture, charge, payment: capture; refund,
//	                                                 payment_refund: refund; fee, stripe_fee: fee;
//	                                                 anything else: other
//	fee         no                                   decimal fee the connector kept; its sign is ignored
//	payment_id  no        metadata[iotpay_payment],  our payment id, pay_...; may be empty
//	                      iotpay_payment (metadata)
//
// When both a name and its alias are present the name wins (reference
// over source; date over created over available_on). Stripe's
// balance-transaction export is read with these aliases; its net, id,
// description and other columns are ignored. A negative amount is how
// Stripe writes a refund or a fee: the sign is dropped and the type says
// the direction; a negative capture is refused. Without a type (no column
// or an empty cell) a positive amount is a capture and a negative one a
// refund. A zero amount is refused. Example:
//
//	reference,type,amount,fee,currency,date,payment_id
//	pi_3OqXyZ2eZvKYlo2C0a1b2c3d,capture,12.34,0.42,EUR,2024-03-01,pay_5f571dywcm576dhc5sabtswzev
//	re_3OqXyZ2eZvKYlo2C1x2y3z4w,refund,5.00,,EUR,2024-03-02T10:15:00Z,
//
// # camt.053 statements
//
// ParseCamt053 reads an ISO 20022 BankToCustomerStatement whose Document
// is in a namespace starting with Camt053Namespace: .001.02 and .001.08
// are tested, and the fields used are the same in the versions between
// and after (charges moved from Chrgs/Amt to Chrgs/Rcrd/Amt in .04; both
// are read). For every Document/BkToCstmrStmt/Stmt/Ntry:
//
//   - Sts (or Sts/Cd): only BOOK entries are items; pending and
//     information-only entries settled nothing yet and are skipped.
//   - Amt with its Ccy attribute: the amount, positive.
//   - CdtDbtInd: CRDT is a capture, DBIT a refund.
//   - BookgDt/Dt or BookgDt/DtTm, else ValDt/Dt or ValDt/DtTm: the date.
//   - NtryDtls/TxDtls: an entry with one transaction (or none) is one
//     item of the entry's Amt; a batch entry with several is one item per
//     transaction, of the transaction's Amt, else AmtDtls/TxAmt/Amt, else
//     AmtDtls/InstdAmt/Amt, and of its own CdtDbtInd when it has one.
//   - Refs/AcctSvcrRef, else Refs/TxId: the Ref; for a single-payment
//     entry without them, the entry's AcctSvcrRef, else its NtryRef.
//   - Refs/EndToEndId: the Payment, when it is one of our payment ids.
//   - Chrgs/Rcrd/Amt (Chrgs/Amt in .02), summed: the Fee, in the item's
//     currency — the transaction's charges, else the entry's. A batch
//     entry's own charges, when its transactions carry none, are an item
//     of their own of kind fee, with the entry's reference.
//
// Line is the line where the entry (or, in a batch, the transaction)
// starts. A DOCTYPE is refused outright, as is a document declared in an
// encoding other than UTF-8, one nested deeper than DepthMax, and one that
// ends early.
//
// # Matching
//
// Match pairs items with ledger entries by reference first; an item whose
// reference the ledger does not know at all is then paired by payment id.
// A pair that differs in kind, currency, amount, or date by more than the
// tolerance (Options.DateTolerance, 72 hours unless set) is a Mismatch
// with a Reason; the rest is Missing (in the ledger only) or Unexpected
// (in the report only). A reference the report names more often than the
// ledger does is listed in Duplicates, and its extra items stay
// Unexpected: nothing is merged. Fees the connector charges on its own
// account and payouts are items too: they are Unexpected unless the
// ledger lists them. Every list is sorted by reference, and within a
// reference the pairing does not depend on the order of the inputs, so
// the same items and entries give the same Report.
package reconcile
