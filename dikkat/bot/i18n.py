"""The bot's catalogs: every reply, command and argument description, in Turkish and English."""

from __future__ import annotations

from dikkat.i18n import Catalog
from dikkat.storage.errors import StoreBusy, StoreError, StoreFull

MESSAGES = Catalog(
    {
        "start": {
            "tr": (
                "Merhaba, ben Dikkat 👋 Transformer modellerini elinizin altına "
                "getiriyorum.\nTürkçe bir cümlenin duygusunu söyleyebilir, harfleri küçük bir GPT "
                "ile sıralayabilir ve dikkat (self-attention) mekanizmasını resimle "
                "gösterebilirim.\nKomutlar için /help yazın."
            ),
            "en": (
                "Hi, I'm Dikkat 👋 I put transformer models in your hands.\nI can tell the "
                "sentiment of a Turkish sentence, sort letters with a tiny GPT and show "
                "self-attention as a picture.\nType /help for the commands."
            ),
        },
        "help_header": {"tr": "Komutlar:", "en": "Commands:"},
        "help_admin_header": {"tr": "Yönetici komutları:", "en": "Admin commands:"},
        "sort_usage": {
            "tr": (
                "Lütfen yalnızca A, B ve C harflerinden oluşan tam 6 harf gönderin.\nÖrnek: /sort "
                "CBABBC"
            ),
            "en": "Please send exactly 6 letters, using only A, B and C.\nExample: /sort CBABBC",
        },
        "sort_result": {
            "tr": "🔤 {letters} → {answer}\n(85.584 parametreli küçük GPT sıraladı)",
            "en": "🔤 {letters} → {answer}\n(sorted by an 85,584-parameter tiny GPT)",
        },
        "sentiment_usage": {
            "tr": (
                "Duygusunu söylememi istediğiniz metni yazın.\nÖrnek: /sentiment Kargo çok hızlı "
                "geldi"
            ),
            "en": (
                "Write the text whose sentiment you want.\nExample: /sentiment Kargo çok hızlı "
                "geldi"
            ),
        },
        "sentiment_result": {
            "tr": "{emoji} {label} (%{confidence})",
            "en": "{emoji} {label} ({confidence}%)",
        },
        "sentiment_ask_feedback": {
            "tr": "Yanlışsa doğrusunu seçin:",
            "en": "If this is wrong, pick the right one:",
        },
        "text_truncated": {
            "tr": "(Metin uzundu; yalnızca başına baktım.)",
            "en": "(The text was long; I only looked at its beginning.)",
        },
        "feedback_created": {
            "tr": 'Teşekkürler! "{label}" olarak kaydettim.',
            "en": 'Thanks! Saved as "{label}".',
        },
        "feedback_changed": {
            "tr": 'Oyunuzu "{label}" olarak değiştirdim.',
            "en": 'Changed your vote to "{label}".',
        },
        "feedback_unchanged": {
            "tr": 'Bu oyu zaten vermiştiniz: "{label}".',
            "en": 'You already voted "{label}".',
        },
        "feedback_missing": {
            "tr": "Bu tahmin artık kayıtlı değil (silinmiş olabilir).",
            "en": "This prediction is no longer stored (it may have been deleted).",
        },
        "lang_usage": {
            "tr": "Dil şu an Türkçe. Değiştirmek için: /lang en (English) veya /lang tr (Türkçe)",
            "en": (
                "The language is English now. To change it: /lang tr (Türkçe) or /lang en (English)"
            ),
        },
        "lang_set": {"tr": "Tamam, artık Türkçe konuşuyorum.", "en": "OK, I'll speak English now."},
        "forget_done": {
            "tr": (
                "Sizinle ilgili kayıtlar silindi: {predictions} tahmin, {feedback} geri bildirim."
            ),
            "en": "Deleted what was stored about you: {predictions} predictions, {feedback} votes.",
        },
        "slow_down": {
            "tr": "Biraz yavaş lütfen 🙂 {seconds} saniye sonra tekrar deneyin.",
            "en": "Please slow down 🙂 Try again in {seconds} seconds.",
        },
        "admin_only": {
            "tr": "Üzgünüm, bu komutu yalnızca yöneticiler kullanabilir.",
            "en": "Sorry, only admins can use this command.",
        },
        "retrain_started": {
            "tr": "Yeniden eğitim #{run_id} başladı; bitince sonucu buraya yazacağım.",
            "en": "Retraining run #{run_id} started; I'll post the result here when it ends.",
        },
        "retrain_busy": {
            "tr": "Bir yeniden eğitim zaten sürüyor; lütfen bitmesini bekleyin.",
            "en": "A retraining run is already in progress; please wait for it to finish.",
        },
        "retrain_requested": {
            "tr": (
                "Yeniden eğitim istendi (istek #{request_id}). Eğitici süreç birkaç saniye içinde "
                "başlatacak; sonucu /models gösterecek."
            ),
            "en": (
                "Retraining requested (request #{request_id}). The trainer starts it within a few "
                "seconds; /models shows the outcome."
            ),
        },
        "retrain_unavailable": {
            "tr": "Yeniden eğitim bu kurulumda kullanılamıyor.",
            "en": "Retraining is not available in this set-up.",
        },
        "retrain_result": {
            "tr": (
                "Yeniden eğitim #{run_id}: {status}. Geri bildirim: {n_feedback}. Makro-F1 önce "
                "{before}; sonra {after}."
            ),
            "en": (
                "Retraining run #{run_id}: {status}. Feedback: {n_feedback}. Macro-F1 before "
                "{before}; after {after}."
            ),
        },
        "scores_fixed": {"tr": "sabit küme {f1}", "en": "fixed set {f1}"},
        "scores_feedback": {
            "tr": "ayrılmış geri bildirim {f1} (n={n})",
            "en": "held-out feedback {f1} (n={n})",
        },
        "scores_p_better": {
            "tr": "daha iyi olma olasılığı {p} (gereken {needed})",
            "en": "P(better) {p} (needs {needed})",
        },
        "scores_floor": {"tr": "sabit küme tabanı {floor}", "en": "fixed-set floor {floor}"},
        "retrain_failed": {
            "tr": "Yeniden eğitim #{run_id} başarısız oldu: {error}. Etkin model değişmedi.",
            "en": "Retraining run #{run_id} failed: {error}. The active model is unchanged.",
        },
        "models_header": {
            "tr": "Model sürümleri ({encoder}):",
            "en": "Model versions ({encoder}):",
        },
        "models_empty": {"tr": "Henüz kayıtlı model sürümü yok.", "en": "No model versions yet."},
        "rollback_usage": {
            "tr": "Hangi sürüm? Örnek: /rollback 2 (sürümler için /models)",
            "en": "Which version? Example: /rollback 2 (see /models)",
        },
        "rollback_damaged": {
            "tr": "#{version} sürümünün dosyası bozuk ya da değişmiş; etkin model değişmedi.",
            "en": "The file of version #{version} is damaged or changed; the active model stays.",
        },
        "rollback_done": {
            "tr": "Sürüm #{version} artık etkin.",
            "en": "Version #{version} is active now.",
        },
        "rollback_unknown": {
            "tr": "#{version} numaralı, bu kodlayıcıya ait bir sürüm yok.",
            "en": "There is no version #{version} for this encoder.",
        },
        "stats": {
            "tr": "Tahminler: {predictions}\nGeri bildirim: {feedback}\nSon eğitim: {last_run}",
            "en": "Predictions: {predictions}\nFeedback: {feedback}\nLast retraining: {last_run}",
        },
        "none": {"tr": "yok", "en": "none"},
        "attention_usage": {
            "tr": (
                "Kullanım: /attention (örnek hesap), /attention CBABBC (küçük GPT) veya /attention "
                "Bu film harikaydı (kodlayıcı)."
            ),
            "en": (
                "Usage: /attention (worked example), /attention CBABBC (tiny GPT) or /attention Bu "
                "film harikaydı (encoder)."
            ),
        },
        "embed_usage": {
            "tr": (
                "Kullanım: /embed (örnek hesap), /embed harika mükemmel berbat kötü masa (2–10 "
                "kelime) veya aynı kelimeyi paylaşan iki cümle: /embed Bu film harika! | "
                "Telefonum bozuldu, harika!"
            ),
            "en": (
                "Usage: /embed (the worked example), /embed harika mükemmel berbat kötü masa "
                "(2–10 words) or two sentences that share a word: /embed Bu film harika! | "
                "Telefonum bozuldu, harika!"
            ),
        },
        "embed_too_many": {
            "tr": "En fazla 10 kelime gönderin. Örnek: /embed harika mükemmel berbat kötü masa",
            "en": "Send at most 10 words. Example: /embed harika mükemmel berbat kötü masa",
        },
        "embed_no_shared_word": {
            "tr": (
                "İki cümlenin ortak bir kelimesi olmalı. Örnek: /embed Bu film harika! | "
                "Telefonum bozuldu, harika!"
            ),
            "en": (
                "The two sentences need a word in common. Example: /embed Bu film harika! | "
                "Telefonum bozuldu, harika!"
            ),
        },
        "embed_words_caption": {
            "tr": (
                "Duygu kodlayıcısının kelime vektörleri ({dim} sayı). Soldaki tablo girdi "
                "gömmeleri (her parçanın gömme tablosundaki satırı, bağlamdan önce), ortadaki "
                "katmanlardan sonraki bağlamsal gömmeler; kosinüs 1'e ne kadar yakınsa vektörler "
                "o kadar benzer. Her kelimenin en yakını (bağlamsal):\n{nearest}\nParçalar: "
                "{pieces}"
            ),
            "en": (
                "The sentiment encoder's word vectors ({dim} numbers). Left: input embeddings "
                "(each piece's row of the embedding table, before any context); middle: the "
                "contextual embeddings after the layers; the closer a cosine is to 1, the more "
                "alike two vectors are. Each word's nearest (contextual):\n{nearest}\nPieces: "
                "{pieces}"
            ),
        },
        "embed_nearest": {
            "tr": "{word} → {other} ({cosine:.2f})",
            "en": "{word} → {other} ({cosine:.2f})",
        },
        "embed_context_caption": {
            "tr": (
                "“{word}” iki cümlede. Girdi gömmesi ikisinde de aynı (kosinüs {input_pair:.2f}): "
                "kodlayıcı her kelimeye önce bağlamdan bağımsız bir vektör verir. Katmanlardan "
                "sonra bağlamsal vektörlerin kosinüsü {context_pair:.2f}; tek başına “{word}” "
                "ile: 1. cümlede {first_alone:.2f}, 2. cümlede {second_alone:.2f}. Bağlam, "
                "kelimenin vektörünü cümleye göre kaydırır: dönüştürücü aynı kelimenin iki "
                "kullanımını böyle ayırt eder."
            ),
            "en": (
                "“{word}” in two sentences. Its input embedding is the same in both (cosine "
                "{input_pair:.2f}): the encoder first gives every word one vector, whatever the "
                "context. After the layers the contextual vectors have cosine {context_pair:.2f}; "
                "against “{word}” on its own: {first_alone:.2f} in sentence 1, {second_alone:.2f} "
                "in sentence 2. Context moves a word's vector to fit the sentence: that is how a "
                "transformer tells two uses of one word apart."
            ),
        },
        "explain_usage": {
            "tr": (
                "Lütfen A, B ve C harflerinden oluşan tam 6 harf gönderin.\nÖrnek: /explain CBABBC"
            ),
            "en": "Please send exactly 6 letters, using only A, B and C.\nExample: /explain CBABBC",
        },
        "attention_sentiment": {
            "tr": "Duygu: {emoji} {label} (%{confidence})",
            "en": "Sentiment: {emoji} {label} ({confidence}%)",
        },
        "unknown_command": {
            "tr": "Bu komutu tanımıyorum: /{command}. Komutların listesi için /help yazın.",
            "en": "I don't know the command /{command}. Type /help for the list of commands.",
        },
        "busy": {
            "tr": "Şu an çok yoğunum, lütfen birazdan tekrar deneyin. ⏳",
            "en": "I'm busy right now, please try again in a moment. ⏳",
        },
        "timeout": {
            "tr": "Bu istek çok uzun sürdü, lütfen tekrar deneyin.",
            "en": "That request took too long, please try again.",
        },
        "internal_error": {
            "tr": "Üzgünüm, bir şeyler ters gitti. Lütfen tekrar deneyin.",
            "en": "Sorry, something went wrong. Please try again.",
        },
        "store_busy": {
            "tr": "Oyunuzu şu an kaydedemedim (veritabanı meşgul). Lütfen birazdan tekrar deneyin.",
            "en": "I couldn't save your vote just now (the database is busy). Please try again.",
        },
        "restarting": {
            "tr": "Şu an yeniden başlıyorum; lütfen birazdan tekrar deneyin. 🔄",
            "en": "I'm restarting right now; please try again in a moment. 🔄",
        },
        "database_busy": {
            "tr": "Veritabanı şu an meşgul, bunu kaydedemedim. Lütfen birazdan tekrar deneyin.",
            "en": "The database is busy right now, so I couldn't save that. Please try again.",
        },
        "database_full": {
            "tr": "Şu an hiçbir şey kaydedemiyorum: sunucunun diski dolu. Lütfen botun "
            "yöneticisine haber verin.",
            "en": "I can't save anything right now: the server's disk is full. Please let the "
            "bot's admin know.",
        },
        "database_unavailable": {
            "tr": "Veritabanına şu an ulaşamıyorum. Lütfen biraz sonra tekrar deneyin.",
            "en": "I can't reach the database right now. Please try again in a little while.",
        },
        "unknown_button": {
            "tr": "Bu düğme artık geçerli değil.",
            "en": "This button is no longer valid.",
        },
        "unavailable": {
            "tr": "Bu özellik şu an kullanılamıyor.",
            "en": "This feature is not available right now.",
        },
    }
)

LABEL_NAMES = Catalog(
    {
        "negative": {"tr": "Olumsuz", "en": "Negative"},
        "neutral": {"tr": "Nötr", "en": "Neutral"},
        "positive": {"tr": "Olumlu", "en": "Positive"},
    }
)
STATUS_NAMES = Catalog(
    {
        "promoted": {"tr": "yeni model etkinleştirildi", "en": "new model promoted"},
        "rejected": {"tr": "yeni model daha iyi değildi, eskisi kaldı", "en": "candidate rejected"},
        "skipped": {
            "tr": "yeterli yeni geri bildirim yok, atlandı",
            "en": "skipped (too little feedback)",
        },
        "failed": {"tr": "başarısız", "en": "failed"},
        "superseded": {
            "tr": "bu sırada etkin model değişti (ör. /rollback), aday etkinleştirilmedi",
            "en": "superseded: the active model changed meanwhile (e.g. /rollback), not promoted",
        },
        "running": {"tr": "sürüyor", "en": "running"},
        "active": {"tr": "etkin", "en": "active"},
        "retired": {"tr": "emekli", "en": "retired"},
        "candidate": {"tr": "aday", "en": "candidate"},
    }
)
LABEL_EMOJI = {"negative": "🙁", "neutral": "😐", "positive": "🙂"}


def t(key: str, lang: str, **values: object) -> str:
    """The bot's message `key` in `lang`, formatted with `values`."""
    return MESSAGES.text(key, lang, **values)


def store_error_key(error: StoreError) -> str:
    """The message that tells a user why the database could not take their request."""
    if isinstance(error, StoreBusy):
        return "database_busy"
    return "database_full" if isinstance(error, StoreFull) else "database_unavailable"
