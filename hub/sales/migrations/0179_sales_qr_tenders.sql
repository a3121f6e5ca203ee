-- sale.completed v4 (issue 10): a tender paid by QR code through the hub keeps its payment intent and the
-- provider's reference of the payment, both or neither (cash and card tenders have neither).
ALTER TABLE sale_tenders
    ADD COLUMN qr_intent        text,
    ADD COLUMN qr_provider_ref  text,
    ADD CONSTRAINT sale_tenders_qr_whole CHECK (num_nulls(qr_intent, qr_provider_ref) IN (0, 2));
