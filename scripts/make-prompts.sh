#!/usr/bin/env bash
# Regenerates every prompt under ivr-prompts/ru/ with espeak-ng's Russian voice and sox.
#
# Output format is what the engine accepts and nothing else: WAV, 8 kHz, 16-bit signed,
# mono. Each phrase is synthesised at 22.05 kHz, leading and trailing silence is trimmed
# (so number fragments join without gaps), the level is normalised to -3 dBFS, a 10 ms
# fade-in and 20 ms fade-out avoid clicks, and the result is resampled to 8 kHz without
# dither, so a rerun gives the same files byte for byte — with the same espeak-ng and
# sox versions only (the committed files come from Debian bookworm's espeak-ng
# 1.51+dfsg-10+deb12u2 and sox 14.4.2+git20190427-3.5; another version of either
# changes the audio, and then every file differs).
#
# The hold music is synthesised with sox (sine arpeggios with a soft reverb): no
# copyrighted material.
#
# Usage: scripts/make-prompts.sh [OUT_DIR]   (default: ivr-prompts/ru next to this script)
# Needs: espeak-ng (with the `ru` voice), sox.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/ivr-prompts/ru}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$out/num" "$out/unit" "$out/date"

RATE="${PROMPT_SPEED:-150}"

# say FILE TEXT: one phrase to FILE (relative to $out).
say() {
    local file="$1" text="$2"
    espeak-ng -v ru -s "$RATE" -w "$tmp/raw.wav" "$text"
    sox -D "$tmp/raw.wav" "$tmp/trim.wav" \
        silence 1 0.02 0.3% reverse silence 1 0.02 0.3% reverse
    sox -D "$tmp/trim.wav" -r 8000 -b 16 -c 1 -e signed-integer "$out/$file" \
        norm -3 fade t 0.01 -0 0.02
}

# --- Greetings and the engine's own prompts (file names referenced by config.rs) ----
say greeting-etalon.wav "Здравствуйте! Вы позвонили в аварийно-диспетчерскую службу управляющей компании Эталон."
say greeting-uyut.wav "Здравствуйте! Вы позвонили в аварийно-диспетчерскую службу управляющей компании Уют."
say greeting-citywide.wav "Здравствуйте! Вы позвонили в единую аварийно-диспетчерскую службу города."
say number-changed.wav "Номер аварийно-диспетчерской службы изменился. Пожалуйста, звоните по номеру"
say queue-wait.wav "Все операторы заняты. Пожалуйста, оставайтесь на линии, вам обязательно ответят."
say callback-promise.wav "Мы перезвоним вам в течение десяти минут. Спасибо за обращение."
say menu-main.wav "Если у вас авария, нажмите один. Чтобы узнать состояние заявки, нажмите два. Для связи с оператором нажмите ноль."
say invalid-choice.wav "Неверный выбор. Попробуйте ещё раз."
say goodbye.wav "Спасибо за звонок. До свидания."
say ticket-number-ask.wav "Введите номер заявки и нажмите решётку."
say connecting.wav "Соединяю с оператором."

# --- Outage announcement parts: intro + kind + restore time (speech) -----------------
# The time follows in the nominative (media::speech has no other case), so the phrase
# before it is worded to take it: not «до» (восемнадцати часов, genitive).
say outage-intro.wav "Внимание! В вашем доме"
say outage-hot-water.wav "отключена горячая вода"
say outage-cold-water.wav "отключена холодная вода"
say outage-heating.wav "отключено отопление"
say outage-electricity.wav "отключено электричество"
say outage-gas.wav "отключён газ"
say outage-lift.wav "не работает лифт"
say outage-restored-at.wav "Время восстановления:"

# --- Debt announcement: intro + amount (speech, nominative) ---------------------------
say debt-intro.wav "По вашему адресу числится задолженность. Сумма задолженности:"
say debt-outro.wav "Пожалуйста, оплатите задолженность."

# --- Dialer informer phrases ------------------------------------------------------------
say informer-ticket.wav "Вам передана аварийная заявка номер"
say informer-address.wav "Адрес"
say informer-accept.wav "Чтобы принять заявку, нажмите один."
say informer-decline.wav "Чтобы отказаться, нажмите два."
say informer-accepted.wav "Заявка принята. Спасибо."
say informer-ticket-planned.wav "Вам передана плановая заявка номер"
say informer-ticket-paid.wav "Вам передана платная заявка номер"
say informer-address-ask.wav "Адрес заявки уточните у диспетчера."
say informer-deadline.wav "Срок выполнения:"
say informer-operator.wav "Чтобы соединиться с диспетчером, нажмите ноль."
say informer-declined.wav "Спасибо. Заявка будет передана следующему сотруднику."
say informer-taken.wav "Заявка уже принята другим сотрудником. Спасибо."
say status-check-intro.wav "Проверка выполнения заявки номер"
say status-check-menu.wav "Если работы выполнены, нажмите один. Если работы ещё ведутся, нажмите два. Если выполнить работы невозможно, нажмите три."
say status-check-thanks.wav "Спасибо, ответ записан."
say resident-registered.wav "Ваша заявка зарегистрирована. Номер заявки:"
say staff-callback-intro.wav "Здравствуйте! Это аварийно-диспетчерская служба. Вы нам звонили. Соединяем с диспетчером."

# --- Keypad survey ------------------------------------------------------------------------
say survey-intro.wav "Здравствуйте! Это аварийно-диспетчерская служба. Звоним по вашей заявке номер"
say survey-rate.wav "Ваша заявка выполнена. Оцените, пожалуйста, качество работы от одного до пяти, нажав цифру на телефоне."
say survey-opt-out.wav "Если вы не хотите, чтобы вам звонили с опросами, нажмите девять."
say survey-effort.wav "Насколько легко было решить ваш вопрос? Оцените от одного до пяти."
say survey-thanks.wav "Спасибо за оценку!"
say survey-opted-out.wav "Хорошо, больше не будем беспокоить. До свидания."

# --- Outage broadcast -----------------------------------------------------------------------
say broadcast-intro.wav "Здравствуйте! Сообщение управляющей компании."

# --- Number words used by media::speech ------------------------------------------------
ones=(ноль один два три четыре пять шесть семь восемь девять десять одиннадцать двенадцать
      тринадцать четырнадцать пятнадцать шестнадцать семнадцать восемнадцать девятнадцать)
for i in "${!ones[@]}"; do say "num/$i.wav" "${ones[$i]}"; done
say num/1f.wav "одна"
say num/2f.wav "две"
tens=([20]=двадцать [30]=тридцать [40]=сорок [50]=пятьдесят [60]=шестьдесят
      [70]=семьдесят [80]=восемьдесят [90]=девяносто)
for n in "${!tens[@]}"; do say "num/$n.wav" "${tens[$n]}"; done
hundreds=([100]=сто [200]=двести [300]=триста [400]=четыреста [500]=пятьсот
          [600]=шестьсот [700]=семьсот [800]=восемьсот [900]=девятьсот)
for n in "${!hundreds[@]}"; do say "num/$n.wav" "${hundreds[$n]}"; done
say num/thousand-1.wav "тысяча"
say num/thousand-2.wav "тысячи"
say num/thousand-5.wav "тысяч"
say num/number.wav "номер"
# The pause between the groups of a telephone number (восемь, триста сорок три, ...).
sox -D -n -r 8000 -b 16 -c 1 -e signed-integer "$out/num/pause.wav" trim 0 0.15

say unit/ruble-1.wav "рубль"
say unit/ruble-2.wav "рубля"
say unit/ruble-5.wav "рублей"
say unit/kopeck-1.wav "копейка"
say unit/kopeck-2.wav "копейки"
say unit/kopeck-5.wav "копеек"
say unit/minute-1.wav "минута"
say unit/minute-2.wav "минуты"
say unit/minute-5.wav "минут"
say unit/hour-1.wav "час"
say unit/hour-2.wav "часа"
say unit/hour-5.wav "часов"
# House numbers in addresses: «дом пятьдесят один корпус два», «дом двенадцать дробь один».
say unit/house.wav "дом"
say unit/building.wav "корпус"
say unit/slash.wav "дробь"

# --- Names the informer says (dialer::message): companies, work types, streets --------
# File names are the codes (tenant, work type) or the street transliterated to ASCII
# (dialer::message::street_prompt). These are the demo data set's; a company that
# goes live adds its own the same way (a street without a prompt is not said, and
# the informer asks the person to check the address with the dispatcher).
mkdir -p "$out/tenant" "$out/work" "$out/street"
say tenant/etalon.wav "Управляющая компания Эталон."
say tenant/uyut.wav "Управляющая компания Уют."
say work/plumbing.wav "Водоснабжение и водоотведение."
say work/heating.wav "Отопление."
say work/electrical.wav "Электроснабжение."
say work/lift.wav "Лифтовое хозяйство."
say work/intercom.wav "Домофоны и двери."
say work/roof.wav "Кровля и фасад."
say work/general.wav "Общестроительные работы."
while read -r file text; do
  say "street/$file.wav" "$text"
done <<'STREETS'
malysheva улица Малышева
vaynera улица Вайнера
kuybysheva улица Куйбышева
belinskogo улица Белинского
radishcheva улица Радищева
sheynkmana улица Шейнкмана
khokhryakova улица Хохрякова
kosmonavtov проспект Космонавтов
pobedy улица Победы
kirovgradskaya улица Кировградская
donbasskaya улица Донбасская
ilicha улица Ильича
bakinskikh-komissarov улица Бакинских Комиссаров
mira улица Мира
gagarina улица Гагарина
komsomolskaya улица Комсомольская
studencheskaya улица Студенческая
kulibina улица Кулибина
bazhova улица Бажова
pervomayskaya улица Первомайская
furmanova улица Фурманова
shchorsa улица Щорса
aviatsionnaya улица Авиационная
chaykovskogo улица Чайковского
krestinskogo улица Крестинского
rodonitovaya улица Родонитовая
bolshakova улица Большакова
lenina улица Ленина
STREETS

# Dates after «Время восстановления:»: the day as a neuter ordinal (nominative), the
# month in the genitive; 21–29 and 31 are num/20 or num/30 + the ordinal of the unit.
days=([1]=первое [2]=второе [3]=третье [4]=четвёртое [5]=пятое [6]=шестое [7]=седьмое
      [8]=восьмое [9]=девятое [10]=десятое [11]=одиннадцатое [12]=двенадцатое
      [13]=тринадцатое [14]=четырнадцатое [15]=пятнадцатое [16]=шестнадцатое
      [17]=семнадцатое [18]=восемнадцатое [19]=девятнадцатое [20]=двадцатое [30]=тридцатое)
for d in "${!days[@]}"; do say "date/day-$d.wav" "${days[$d]}"; done
months=(января февраля марта апреля мая июня июля августа сентября октября ноября декабря)
for i in "${!months[@]}"; do say "date/month-$((i + 1)).wav" "${months[$i]}"; done
say date/tomorrow.wav "завтра"

# --- Hold music: a calm I-vi-IV-V arpeggio in C, synthesised --------------------------
# Each chord is eight 0.375 s notes (sine with a soft pluck-like envelope); four chords
# make 12 s, played twice = 24 s, with a gentle reverb tail.
notes=(
  "C4 E4 G4 C5 E5 C5 G4 E4"
  "A3 C4 E4 A4 C5 A4 E4 C4"
  "F3 A3 C4 F4 A4 F4 C4 A3"
  "G3 B3 D4 G4 B4 G4 D4 B3"
)
parts=()
k=0
for round in 1 2; do
  for chord in "${notes[@]}"; do
    for note in $chord; do
      f="$tmp/n$(printf %03d $k).wav"
      # sox takes a pitch as %semitones from A4; compute it from the note name.
      name="${note:0:1}"; octave="${note:1:1}"
      case "$name" in C) s=-9;; D) s=-7;; E) s=-5;; F) s=-4;; G) s=-2;; A) s=0;; B) s=2;; esac
      semis=$(( s + (octave - 4) * 12 ))
      sox -D -n -r 22050 -b 16 -c 1 "$f" synth 0.375 sine "%$semis" synth 0.375 sine mix "%$((semis + 12))" \
          vol 0.5 fade q 0.01 0.375 0.3
      parts+=("$f")
      k=$((k + 1))
    done
  done
done
sox -D "${parts[@]}" "$tmp/music.wav"
sox -D "$tmp/music.wav" -r 8000 -b 16 -c 1 -e signed-integer "$out/hold-music.wav" \
    reverb 40 50 60 lowpass 3000 norm -6
sox -D "$out/hold-music.wav" "$tmp/hm.wav" fade t 0.5 -0 1.5
cp "$tmp/hm.wav" "$out/hold-music.wav"

echo "prompts written to $out"
