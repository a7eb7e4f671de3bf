"""The text generator of :mod:`speechtl.synth`: word lists, sentence templates and the grammar filling them.

Templates are format strings whose ``{slots}`` :mod:`speechtl.synth` fills from the lists below.
English slots (all verb slots in one sentence share one verb, ``W*`` a second, ``I*`` an intransitive):

    S  3rd-person-singular subject    P  plural subject (we/you/they/the Xs)    N  a name
    O  object noun phrase              H  person noun (sg)   Hp  person noun (pl)   thing  object noun (sg)
    Np plural object noun              place  a place noun   L  place phrase         A  adjective
    R  manner adverb                   num  2-99 in words    hour  1-12 in words
    Tp / Tf / Th  past / future / habitual time phrase (each also draws from TIME_ANY)
    V V3 Vd Vn Vg  base, 3rd-sg, past, past participle, -ing of a transitive verb (W* likewise)
    I0 I3 Id In Ig the same forms of an intransitive verb

Irregular forms are written ``base/past/participle``; a trailing ``*`` doubles the final consonant
(``stop*`` → stopped, stopping); irregular plurals are written ``singular/plural``; ``_`` joins the
words of one entry (``post_office``).
Other languages use the slots of :data:`FOREIGN` (see its comment).
"""

from __future__ import annotations

import functools
import random
import re
from typing import Callable

EN_NAMES = """Anna Maria John David Sarah James Emma Oliver Sophie Lucas Mia Noah Olivia Liam Grace Henry
Chloe Jack Ella Thomas Alice Daniel Emily Samuel Laura Peter Hannah George Lily Oscar Ruby Adam Zoe Michael
Rachel Robert Kate Paul Helen Mark Lucy Simon Clara Martin Julia Victor Nina Harry Rose Leo Isabel Max Eva
Arthur Jane Tom Amy Ben Fiona Ian Megan Patrick Naomi Edward Holly Frank Alan Diana Carlos Priya Omar Yusuf
Mei Kenji Amara Tariq Ingrid Sean Bridget Dylan"""

EN_PEOPLE = """teacher doctor nurse farmer driver student artist engineer lawyer pilot baker builder cook waiter
waitress/waitresses singer writer painter dancer player manager neighbour friend cousin uncle aunt brother
sister mother father grandmother grandfather son daughter child/children baby boy girl man/men woman/women
stranger visitor tourist guest customer officer soldier scientist professor musician photographer
journalist shopkeeper gardener plumber mechanic secretary librarian fisherman/fishermen postman/postmen
carpenter hairdresser dentist farmhand butcher tailor porter captain sailor fireman/firemen judge clerk
cashier ranger coach referee poet actor actress/actresses chef architect banker detective guard
housekeeper inventor nanny pharmacist plumber reporter surgeon teenager toddler twin volunteer lecturer"""

EN_ANIMALS = """dog cat horse cow sheep/sheep goat pig chicken duck goose/geese rabbit mouse/mice fox wolf/wolves
bear lion tiger elephant monkey bird owl eagle fish/fish snake frog turtle whale dolphin bee spider
butterfly deer/deer squirrel donkey parrot puppy kitten hamster camel zebra giraffe penguin"""

EN_THINGS = """book letter pen pencil table chair lamp window door key phone computer bag box bottle cup glass
plate knife/knives fork spoon bowl ticket map camera picture photo painting guitar piano violin drum ball
bicycle car bus truck boat train plane ring watch hat coat jacket shirt dress shoe sock umbrella blanket
pillow bed sofa mirror clock basket bucket candle newspaper magazine notebook envelope parcel present gift
coin wallet suitcase ladder hammer rope brush towel shelf/shelves drawer cupboard fridge oven kettle radio
television laptop tablet printer battery apple banana orange lemon potato/potatoes tomato/tomatoes carrot
onion egg sandwich cake biscuit cookie pie pizza sausage melon peach pear cherry grape strawberry cucumber
pumpkin loaf/loaves flower tree leaf/leaves stone shell feather kite puzzle toy doll helmet glove scarf
boot belt button needle bracelet necklace vase jar tray basket carpet curtain poster postcard calendar
diary dictionary album recipe invoice receipt ribbon balloon trophy medal engine wheel tyre sail anchor
tent torch compass saw screwdriver shovel spade wheelbarrow fence gate roof chimney pot pan lid teapot mug
napkin stamp sticker folder file crayon chalk ruler eraser backpack lunchbox"""

EN_MASS = """bread water coffee tea milk juice rice soup cheese butter sugar salt pepper honey chocolate money
music news homework furniture luggage information advice traffic paper wood sand snow ice flour pasta
jam cereal yoghurt lemonade soap shampoo toothpaste medicine petrol equipment laundry rubbish firewood
popcorn garlic spinach lettuce broccoli cream"""

EN_PLACES = """station airport library museum hospital school university office bank market supermarket bakery
pharmacy cinema theatre restaurant cafe hotel church castle bridge harbour beach forest park garden kitchen
bedroom bathroom garage attic basement hallway village city town mountain valley river lake island desert
farm field factory stadium gym swimming_pool playground zoo shop post_office bus_stop square cottage
cathedral lighthouse palace prison laboratory warehouse workshop studio barn orchard meadow cave jungle
harbour canal tunnel motorway highway pier dock campsite classroom canteen corridor lobby balcony cellar
greenhouse vineyard"""

EN_FIXED_PLACES = ["at home", "at work", "in town", "upstairs", "downstairs", "outside", "abroad", "at school"]

EN_PREPOSITIONS = ["in the", "at the", "near the", "behind the", "next to the", "outside the", "inside the",
                   "in front of the", "across from the", "around the", "beside the", "opposite the"]

EN_ADJECTIVES = """big small large little tall short long old young new ancient modern heavy light dark bright hot
cold warm cool wet dry clean dirty quiet loud noisy busy empty full cheap expensive rich poor happy sad angry
tired hungry thirsty sleepy lazy clever brave shy kind friendly polite rude funny serious strange famous
beautiful pretty ugly handsome lovely nice fine good bad terrible wonderful excellent perfect simple easy
difficult hard soft smooth rough sharp thick thin wide narrow deep shallow fast slow early late strong weak
fresh sweet sour bitter salty spicy delicious healthy sick safe dangerous careful careless fancy plain
broken open closed red blue green yellow purple pink brown black white grey golden silver wooden plastic
ripe rotten crowded peaceful calm wild gentle proud nervous excited bored worried surprised curious honest
patient generous strict silly clumsy cheerful gloomy cosy tiny huge enormous giant round square flat
crooked straight colourful shiny dusty muddy sunny cloudy rainy windy foggy snowy frozen icy humid fragile
sturdy valuable useful useless important popular ordinary unusual rare common foreign local public private
secret mysterious magical elegant shabby grumpy jolly fierce tame loyal tidy messy noble humble ancient
awkward bold charming cruel eager faithful fancy fearless glamorous graceful helpful hollow jealous lonely
lucky mighty modest narrow odd precious quick rapid rusty scary shallow sleek solid splendid stiff sticky
stormy tender thoughtful tough vast vivid wealthy weary wise witty young zealous"""

EN_ADVERBS = """quickly slowly carefully quietly loudly happily sadly easily badly gently suddenly finally
politely proudly nervously patiently angrily eagerly calmly bravely secretly silently honestly kindly
gladly quietly rudely softly warmly neatly briefly clearly closely correctly deliberately firmly
gracefully hastily lazily loosely merrily noisily openly perfectly properly rapidly roughly safely
smoothly steadily strictly swiftly tenderly thoroughly tightly wisely boldly cheerfully cautiously
anxiously curiously generously"""

EN_TIME_PAST = """yesterday|last night|last week|last month|last year|two days ago|a few minutes ago|this morning|
the day before yesterday|an hour ago|last summer|last winter|a long time ago|earlier today|the other day"""
EN_TIME_FUTURE = """tomorrow|tonight|next week|next month|next year|soon|later|the day after tomorrow|
in a few minutes|next summer|this weekend|in an hour|one day|next time"""
EN_TIME_HABIT = """every day|every morning|every evening|every weekend|on weekends|once a week|twice a month|
most days|every summer|every winter|most evenings|in the holidays"""
EN_TIME_ANY = """on Monday|on Tuesday|on Wednesday|on Thursday|on Friday|on Saturday|on Sunday|in the morning|
in the afternoon|in the evening|at night|at noon|at midnight|after lunch|before dinner|after breakfast|
in January|in February|in March|in April|in May|in June|in July|in August|in September|in October|
in November|in December|in the spring|in the summer|in the autumn|in the winter|at the weekend|after school|
after work|before sunrise|after sunset"""

EN_VERBS = """buy/bought/bought bring/brought/brought build/built/built carry catch/caught/caught
choose/chose/chosen clean climb close collect cook count cut*/cut/cut deliver draw/drew/drawn
drink/drank/drunk drive/drove/driven drop* eat/ate/eaten explain feed/fed/fed fill find/found/found finish
fix follow forget*/forgot/forgotten give/gave/given hear/heard/heard help hide/hid/hidden hit*/hit/hit
hold/held/held keep/kept/kept kick leave/left/left lend/lent/lent lift like lose/lost/lost love
make/made/made meet/met/met miss move need open order paint pack pass pay/paid/paid pick plant play pull
push put*/put/put read/read/read remember repair return ride/rode/ridden sell/sold/sold send/sent/sent
show/showed/shown sing/sang/sung spill steal/stole/stolen sweep/swept/swept take/took/taken
teach/taught/taught tell/told/told throw/threw/thrown touch understand/understood/understood visit wash
watch wear/wore/worn win*/won/won write/wrote/written borrow answer ask bake boil burn call change check
chase copy cover describe design discover enjoy examine fold grab* greet hang/hung/hung hug* invite join
kiss knock lock mend mix notice offer organise pour prepare print protect reach receive recognise
recommend rent replace save search share shut*/shut/shut sign sort spend/spent/spent squeeze stir* study
taste test tidy tie try turn use wrap* weigh wipe bite/bit/bitten blow/blew/blown break/broke/broken
feel/felt/felt forgive/forgave/forgiven shake/shook/shaken freeze/froze/frozen lead/led/led see/saw/seen
shoot/shot/shot spread/spread/spread tear/tore/torn do/did/done admire adopt borrow bury calculate
celebrate clear close decorate deliver destroy dry earn empty fetch film frighten guard hire imagine
inspect introduce iron load measure memorise mention miss observe obtain polish post praise press
produce pronounce publish rescue reserve scratch scrub* shovel sketch slice smell solve stack stamp steer
stroke support surround tease thank translate trust unpack unlock update water welcome"""

EN_INTRANSITIVE = """arrive sleep/slept/slept laugh cry smile run*/ran/run walk swim*/swam/swum dance wait work
rest shout whisper jump fall/fell/fallen sit*/sat/sat stand/stood/stood fly/flew/flown come/came/come
go/went/gone stay listen speak/spoke/spoken talk complain agree breathe cough sneeze snore yawn shiver
wander hurry relax disappear appear succeed begin*/began/begun continue improve rise/rose/risen
shine/shone/shone pray dream skate ski cycle camp sail hike jog* shop* vote argue exercise kneel/knelt/knelt
travel* sing/sang/sung play read/read/read cook study write/wrote/written paint swim*/swam/swum"""

EN_TEMPLATES = [
    # statements
    "{S} {V3} {O} {L}.", "{S} {V3} {O} {Th}.", "{P} {V} {O} {R}.", "{S} {Vd} {O} {L} {Tp}.",
    "{P} {Vd} {O} {Tp}.", "I {Vd} {O} {L}.", "{S} will {V} {O} {Tf}.", "{P} are going to {V} {O} {L}.",
    "{S} is {Vg} {O} {L}.", "{P} were {Vg} {O} when {S} {Id}.", "{S} has already {Vn} {O}.",
    "{P} have never {Vn} {O}.", "I've just {Vn} {O}.", "{S} doesn't {V} {O} {Th}.", "{P} don't {V} {O} {L}.",
    "{S} didn't {V} {O}, but {P} {Vd} {O}.", "{S} can't {V} {O} because {S} is too {A}.",
    "You should {V} {O} before {S} {I3}.", "{S} might {V} {O} {L}.", "If {S} {I3} {Tf}, {P} will {V} {O}.",
    "{Tp}, {S} {Id} {L}.", "{S} {Id} {R} {L}.", "{P} {I0} {L} {Th}.", "{S} was {Ig} {L} {Tp}.",
    "The {place} was {A} and {A} {Tp}.", "There are {num} {Np} {L}.", "There is a {A} {thing} {L}.",
    "{N} bought {num} {Np} for {num} dollars.", "The train to the {place} leaves at {hour} o'clock.",
    "My {H} is {A} but very {A}.", "{N} said that {S} {Vd} {O} {Tp}.", "{N} thinks {P} should {V} {O} {R}.",
    "It's {A} {L} {Tf}.", "Please {V} {O} {R}.", "Don't forget to {V} {O} {Tf}.", "Let's {V} {O} {L}.",
    "{N} and {N} {Vd} {O} together.", "After {Vg} {O}, {S} {Id}.", "{S} would like to {V} {O} {Tf}.",
    "Although it was {A}, {P} {Id} {L}.", "{N}'s {H} {Vd} {O} {Tp}.", "The {H}'s {thing} is very {A}.",
    "{P} won't {V} {O} {Tf}.", "{Tf}, {S} will {V} {O} and {W} {O}.", "{S} {Vd} {O}, so {P} {Wd} {O}.",
    "{S} usually {V3} {O} {R}.", "The {A} {Hp} {Id} {L} {Tp}.", "I'm {Vg} {O} for my {H}.",
    "{P} {Vd} {O} and then {Id} {L}.", "We need to {V} {O} before the {place} closes.",
    "{S} is {A}, {A} and a little {A}.", "{S} {I3} {R} while {P} {V} {O}.",
    # questions
    "Did {S} {V} {O} {Tp}?", "Does {S} {V} {O} {L}?", "Do {P} {V} {O}?", "Where did {S} {V} {O}?",
    "Why is {S} {Vg} {O} {L}?", "When will {P} {V} {O}?", "Have you ever {Vn} {O}?",
    "How many {Np} did {N} {V}?", "Who {Vd} {O} {L}?", "What time does the {place} open?",
    "Is the {thing} {L} {A}?", "Can {S} {V} {O} {Tf}?", "Which {thing} did {P} {V} {Tp}?",
    "Why don't {P} {V} {O} {Th}?", "Aren't {P} {A} {Tf}?", "Wasn't {S} {Ig} {L}?",
    "How often does {N} {I0} {L}?", "Could you {V} {O} {R}, please?", "Would {P} like to {V} {O}?",
    "What did {S} {V} {L} {Tp}?", "Is it true that {S} {Vd} {O}?",
]

EN_NUMBERS_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen " \
    "fifteen sixteen seventeen eighteen nineteen".split()
EN_NUMBERS_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

# Other languages. Every entry list is ';'-separated; slots used by their templates:
#   S subject (name or person)  O object (German: accusative)  Thing/thing a noun phrase that sets the
#   gender for the next Pred/Pred0 (predicate with/without intensifier)   Pl plural noun  num number
#   L place phrase  Tp past time  Th present/future time  V3 Vpp Vinf verb (3rd sg, participle, infinitive)
#   I3 Iaux Ipp intransitive verb (3rd sg, perfect auxiliary, participle)
# things: "gender|singular noun phrase|plural noun"; adjectives "form/feminine-or-neuter form";
# Spanish adjectives starting with '*' take "está" (a state), the others "es".
FOREIGN = {
    "de": dict(
        copula="ist",
        names="Anna; Lukas; Marie; Felix; Sophie; Jonas; Lena; Paul; Emma; Max; Mia; Leon; Hannah; Jan; "
              "Jürgen; Jörg; Björn; Bärbel; Günther; Käthe; Klara; Moritz; Jörn; Tim",
        people="der Lehrer; die Lehrerin; der Arzt; die Ärztin; der Bäcker; die Mutter; der Vater; "
               "der Bruder; die Schwester; das Kind; das Mädchen; der Junge; die Großmutter; der Großvater; "
               "der Nachbar; die Nachbarin; der Koch; die Köchin; der Fahrer; der Kellner; die Verkäuferin; "
               "der Freund; die Freundin; der Onkel; die Tante; der Bauer; die Künstlerin; der Förster",
        things="-|der Apfel|Äpfel; -|das Buch|Bücher; -|die Zeitung|Zeitungen; -|der Schlüssel|Schlüssel; "
               "-|die Tasche|Taschen; -|der Brief|Briefe; -|das Fahrrad|Fahrräder; -|der Stuhl|Stühle; "
               "-|der Tisch|Tische; -|die Lampe|Lampen; -|das Glas|Gläser; -|die Flasche|Flaschen; "
               "-|der Kuchen|Kuchen; -|das Brötchen|Brötchen; -|die Blume|Blumen; -|der Ball|Bälle; "
               "-|das Auto|Autos; -|die Uhr|Uhren; -|der Hut|Hüte; -|der Mantel|Mäntel; -|die Jacke|Jacken; "
               "-|das Hemd|Hemden; -|der Schuh|Schuhe; -|der Teller|Teller; -|die Tasse|Tassen; "
               "-|der Löffel|Löffel; -|das Messer|Messer; -|die Gabel|Gabeln; -|das Bild|Bilder; "
               "-|die Karte|Karten; -|das Geschenk|Geschenke; -|der Koffer|Koffer; -|das Handy|Handys; "
               "-|der Computer|Computer; -|das Fenster|Fenster; -|die Tür|Türen; -|das Heft|Hefte; "
               "-|der Stift|Stifte; -|die Brille|Brillen; -|der Regenschirm|Regenschirme; -|die Kerze|Kerzen; "
               "-|das Ei|Eier; -|die Kartoffel|Kartoffeln; -|die Tomate|Tomaten; -|die Birne|Birnen; "
               "-|das Brot|Brote; -|die Suppe|Suppen; -|das Würstchen|Würstchen; -|der Fußball|Fußbälle; "
               "-|die Gitarre|Gitarren; -|das Klavier|Klaviere; -|die Decke|Decken; -|das Kissen|Kissen; "
               "-|der Schrank|Schränke; -|der Kühlschrank|Kühlschränke; -|die Münze|Münzen; "
               "-|der Rucksack|Rucksäcke; -|die Fahrkarte|Fahrkarten; -|das Paket|Pakete; "
               "-|der Spiegel|Spiegel; -|der Korb|Körbe; -|die Schüssel|Schüsseln; -|der Teppich|Teppiche; "
               "-|die Mütze|Mützen; -|der Handschuh|Handschuhe; -|das Spielzeug|Spielzeuge",
        verbs="kauft|gekauft|kaufen; liest|gelesen|lesen; sucht|gesucht|suchen; findet|gefunden|finden; "
              "bringt|gebracht|bringen; trägt|getragen|tragen; öffnet|geöffnet|öffnen; "
              "schließt|geschlossen|schließen; wäscht|gewaschen|waschen; repariert|repariert|reparieren; "
              "verkauft|verkauft|verkaufen; vergisst|vergessen|vergessen; nimmt|genommen|nehmen; "
              "holt|geholt|holen; sieht|gesehen|sehen; malt|gemalt|malen; zeichnet|gezeichnet|zeichnen; "
              "putzt|geputzt|putzen; versteckt|versteckt|verstecken; verliert|verloren|verlieren; "
              "braucht|gebraucht|brauchen; bestellt|bestellt|bestellen; backt|gebacken|backen; "
              "schickt|geschickt|schicken; zeigt|gezeigt|zeigen; hält|gehalten|halten; wirft|geworfen|werfen; "
              "fängt|gefangen|fangen; füllt|gefüllt|füllen; leert|geleert|leeren; legt|gelegt|legen; "
              "hebt|gehoben|heben; packt|gepackt|packen; trocknet|getrocknet|trocknen; "
              "empfiehlt|empfohlen|empfehlen; benutzt|benutzt|benutzen; wählt|gewählt|wählen; "
              "bekommt|bekommen|bekommen; schenkt|geschenkt|schenken; prüft|geprüft|prüfen",
        intransitive="schläft|hat|geschlafen; arbeitet|hat|gearbeitet; singt|hat|gesungen; tanzt|hat|getanzt; "
                     "lacht|hat|gelacht; wartet|hat|gewartet; schwimmt|ist|geschwommen; läuft|ist|gelaufen; "
                     "spielt|hat|gespielt; kocht|hat|gekocht; bleibt|ist|geblieben; weint|hat|geweint; "
                     "spaziert|ist|spaziert; ruht|hat|geruht; frühstückt|hat|gefrühstückt; lernt|hat|gelernt",
        adjectives="schön; groß; klein; alt; neu; teuer; billig; warm; kalt; heiß; müde; glücklich; traurig; "
                   "laut; leise; schnell; langsam; schwer; leicht; dunkel; hell; sauber; schmutzig; voll; leer; "
                   "nass; trocken; lecker; süß; sauer; bitter; früh; spät; freundlich; nett; krank; gesund; "
                   "stark; schwach; fröhlich; ruhig; wütend; hungrig; gefährlich; sicher; bequem; lustig; "
                   "komisch; ernst; berühmt; beliebt; wichtig; grün; blau; rot; gelb; weiß; schwarz; grau; "
                   "braun; kaputt; fertig; hässlich; gemütlich; zufrieden; nützlich; schwierig; einfach",
        intensifiers="sehr; ziemlich; wirklich; zu; etwas; besonders; so; ein bisschen; überhaupt nicht; nicht",
        places="im Park; im Garten; in der Küche; in der Schule; im Büro; am Bahnhof; auf dem Markt; "
               "in der Stadt; im Supermarkt; beim Bäcker; zu Hause; im Wohnzimmer; im Keller; auf dem Dach; "
               "am Strand; im Wald; am See; auf der Straße; im Krankenhaus; in der Bibliothek; im Hotel; "
               "im Restaurant; im Café; an der Brücke; neben der Tür; unter dem Tisch; hinter dem Haus; "
               "im Kino; im Museum; auf dem Spielplatz; am Flughafen; in der Bäckerei; in der Apotheke",
        past="gestern; gestern Abend; letzte Woche; letztes Jahr; vorgestern; heute Morgen; "
             "vor zwei Tagen; am Wochenende; im Sommer; am Montag; am Freitag",
        present="heute; morgen; heute Abend; morgen früh; übermorgen; am Montag; am Dienstag; am Mittwoch; "
                "am Donnerstag; am Freitag; am Samstag; am Sonntag; am Wochenende; jeden Tag; im Sommer; "
                "im Winter; im Frühling; im Herbst; nach dem Essen; vor dem Frühstück; um acht Uhr; später; "
                "bald; nächste Woche; am Nachmittag; in der Nacht",
        numbers="zwei; drei; vier; fünf; sechs; sieben; acht; neun; zehn; elf; zwölf; zwanzig; dreißig; hundert",
        templates=[
            "{S} {V3} {Th} {O}.", "{S} {V3} {O} {L}.", "{Th} {V3} {S} {O}.", "{S} hat {Tp} {O} {Vpp}.",
            "{S} hat {O} {L} {Vpp}.", "Hat {S} {O} {Vpp}?", "{V3} {S} {O} {L}?", "Wo hat {S} {O} {Vpp}?",
            "Warum {V3} {S} {Th} {O}?", "Ich möchte {Th} {O} {Vinf}.", "Wir müssen {O} {L} {Vinf}.",
            "Kannst du {O} {Vinf}?", "{Thing} {Pred}.", "{Thing} {L} {Pred}.", "{S} {I3} {Th} {L}.",
            "{S} {Iaux} {Tp} {L} {Ipp}.", "{S} hat {num} {Pl} {Vpp}.", "Es gibt {num} {Pl} {L}.",
            "{S} {V3} {O}, aber {S} {I3} {L}.", "{Thing} {Pred0}, und {thing} {Pred}.",
            "Ich glaube, dass {S} {O} {Vpp} hat.", "Hast du {Tp} {O} {L} {Vpp}?",
        ],
    ),
    "es": dict(
        copula="es",
        names="María; José; Lucía; Martín; Sofía; Andrés; Inés; Raúl; Ángel; Begoña; Íñigo; Jesús; Carmen; "
              "Pablo; Elena; Tomás; Verónica; Óscar; Julián; Mónica; Nuria; Rubén",
        people="el profesor; la profesora; el médico; la médica; el panadero; el niño; la niña; el padre; "
               "la madre; el hermano; la hermana; el vecino; la vecina; el estudiante; la estudiante; "
               "el cocinero; la cocinera; el conductor; el cartero; la abuela; el abuelo; el tío; la tía; "
               "el camarero; la camarera; el policía; la artista; el granjero; el músico; la enfermera",
        things="m|el libro|libros; f|la carta|cartas; f|la llave|llaves; m|el teléfono|teléfonos; "
               "f|la bicicleta|bicicletas; f|la silla|sillas; f|la mesa|mesas; f|la lámpara|lámparas; "
               "m|el vaso|vasos; f|la botella|botellas; m|el pastel|pasteles; f|la manzana|manzanas; "
               "m|el pan|panes; f|la flor|flores; m|el balón|balones; m|el coche|coches; m|el reloj|relojes; "
               "m|el sombrero|sombreros; m|el abrigo|abrigos; f|la chaqueta|chaquetas; f|la camisa|camisas; "
               "m|el zapato|zapatos; m|el plato|platos; f|la taza|tazas; f|la cuchara|cucharas; "
               "m|el cuchillo|cuchillos; m|el tenedor|tenedores; m|el cuadro|cuadros; m|el mapa|mapas; "
               "m|el regalo|regalos; f|la maleta|maletas; m|el ordenador|ordenadores; f|la ventana|ventanas; "
               "f|la puerta|puertas; m|el cuaderno|cuadernos; m|el lápiz|lápices; f|la vela|velas; "
               "m|el huevo|huevos; m|el tomate|tomates; f|la pera|peras; f|la naranja|naranjas; "
               "f|la sopa|sopas; m|el queso|quesos; f|la guitarra|guitarras; m|el piano|pianos; "
               "f|la manta|mantas; f|la almohada|almohadas; m|el armario|armarios; f|la nevera|neveras; "
               "f|la moneda|monedas; m|el bolso|bolsos; m|el billete|billetes; m|el paquete|paquetes; "
               "m|el espejo|espejos; f|la cesta|cestas; m|el periódico|periódicos; f|la caja|cajas; "
               "f|la alfombra|alfombras; m|el jamón|jamones; m|el melón|melones; m|el limón|limones; "
               "m|el cepillo|cepillos; f|la cámara|cámaras",
        verbs="compra|comprado|comprar; lee|leído|leer; busca|buscado|buscar; encuentra|encontrado|encontrar; "
              "trae|traído|traer; lleva|llevado|llevar; abre|abierto|abrir; cierra|cerrado|cerrar; "
              "lava|lavado|lavar; repara|reparado|reparar; vende|vendido|vender; olvida|olvidado|olvidar; "
              "toma|tomado|tomar; ve|visto|ver; pinta|pintado|pintar; dibuja|dibujado|dibujar; "
              "limpia|limpiado|limpiar; esconde|escondido|esconder; pierde|perdido|perder; pide|pedido|pedir; "
              "come|comido|comer; envía|enviado|enviar; enseña|enseñado|enseñar; tira|tirado|tirar; "
              "coge|cogido|coger; llena|llenado|llenar; vacía|vaciado|vaciar; pone|puesto|poner; "
              "levanta|levantado|levantar; prepara|preparado|preparar; elige|elegido|elegir; "
              "recibe|recibido|recibir; escribe|escrito|escribir; rompe|roto|romper; mira|mirado|mirar; "
              "usa|usado|usar; seca|secado|secar; decora|decorado|decorar; guarda|guardado|guardar; "
              "devuelve|devuelto|devolver",
        intransitive="duerme|ha|dormido; trabaja|ha|trabajado; canta|ha|cantado; baila|ha|bailado; "
                     "ríe|ha|reído; espera|ha|esperado; nada|ha|nadado; corre|ha|corrido; camina|ha|caminado; "
                     "descansa|ha|descansado; llora|ha|llorado; estudia|ha|estudiado; desayuna|ha|desayunado",
        adjectives="grande; pequeño/pequeña; bonito/bonita; nuevo/nueva; viejo/vieja; caro/cara; "
                   "barato/barata; ligero/ligera; pesado/pesada; *caliente; *frío/fría; *limpio/limpia; "
                   "*sucio/sucia; *lleno/llena; *vacío/vacía; *seco/seca; *mojado/mojada; delicioso/deliciosa; "
                   "dulce; *roto/rota; azul; verde; rojo/roja; blanco/blanca; negro/negra; amarillo/amarilla; "
                   "antiguo/antigua; moderno/moderna; extraño/extraña; famoso/famosa; *listo/lista; "
                   "*cansado/cansada; feliz; *contento/contenta; *enfermo/enferma; simpático/simpática; "
                   "gracioso/graciosa; serio/seria; *ocupado/ocupada; rápido/rápida; lento/lenta; difícil; "
                   "fácil; útil; oscuro/oscura; tranquilo/tranquila; ruidoso/ruidosa; suave; fuerte; débil; "
                   "cómodo/cómoda; práctico/práctica",
        intensifiers="muy; bastante; demasiado; un poco; tan; realmente; algo; más",
        places="en el parque; en el jardín; en la cocina; en la escuela; en la oficina; en la estación; "
               "en el mercado; en la ciudad; en el supermercado; en la panadería; en casa; en el salón; "
               "en el sótano; en la playa; en el bosque; junto al lago; en la calle; en el hospital; "
               "en la biblioteca; en el hotel; en el restaurante; en la cafetería; cerca del puente; "
               "detrás de la casa; en el cine; en el museo; en el aeropuerto; en la farmacia; "
               "debajo de la mesa; al lado de la ventana; en la montaña; en el jardín de atrás",
        past="esta mañana; esta semana; este mes; este año; hoy; hace un momento; hace poco; esta tarde",
        present="mañana; hoy; esta noche; el lunes; el martes; el miércoles; el jueves; el viernes; "
                "el sábado; el domingo; los fines de semana; cada día; en verano; en invierno; en primavera; "
                "en otoño; después de comer; antes de la cena; a las ocho; más tarde; pronto; "
                "la semana que viene; por la mañana; por la tarde; pasado mañana",
        numbers="dos; tres; cuatro; cinco; seis; siete; ocho; nueve; diez; once; doce; veinte; treinta; cien; "
                "dieciséis; veintidós",
        templates=[
            "{S} {V3} {O} {L}.", "{S} {V3} {O} {Th}.", "{Th}, {S} {V3} {O}.", "{S} ha {Vpp} {O} {Tp}.",
            "{S} ha {Vpp} {O} {L}.", "¿{S} ha {Vpp} {O}?", "¿Dónde ha {Vpp} {S} {O}?",
            "¿Por qué {V3} {S} {O} {Th}?", "Quiero {Vinf} {O} {Th}.", "Tenemos que {Vinf} {O} {L}.",
            "¿Puedes {Vinf} {O}?", "{Thing} {Pred}.", "{Thing} {L} {Pred}.", "{S} {I3} {L} {Th}.",
            "{S} {Iaux} {Ipp} {L} {Tp}.", "{S} ha {Vpp} {num} {Pl}.", "Hay {num} {Pl} {L}.",
            "{S} {V3} {O}, pero {S} {I3} {L}.", "{Thing} {Pred0}, y {thing} {Pred}.",
            "Creo que {S} ha {Vpp} {O}.", "¿Has {Vpp} {O} {Tp}?",
        ],
    ),
    "fr": dict(
        copula="est",
        names="Marie; Pierre; Élodie; Jérôme; Hélène; François; Chloé; Léa; Théo; Zoé; Noël; Gaëlle; Inès; "
              "Raphaël; Céline; Benoît; André; Amélie; Lucas; Camille; Mathéo; Anaïs",
        people="le professeur; le médecin; l'infirmière; le boulanger; la boulangère; le garçon; la fille; "
               "l'enfant; le père; la mère; le frère; la sœur; le voisin; la voisine; l'étudiant; "
               "l'étudiante; le cuisinier; la cuisinière; le chauffeur; le facteur; la grand-mère; "
               "le grand-père; l'oncle; la tante; le serveur; la serveuse; le policier; l'artiste; le fermier",
        things="m|le livre|livres; f|la lettre|lettres; f|la clé|clés; m|le téléphone|téléphones; "
               "m|le vélo|vélos; f|la chaise|chaises; f|la table|tables; f|la lampe|lampes; m|le verre|verres; "
               "f|la bouteille|bouteilles; m|le gâteau|gâteaux; f|la pomme|pommes; m|le pain|pains; "
               "f|la fleur|fleurs; m|le ballon|ballons; f|la voiture|voitures; f|la montre|montres; "
               "m|le chapeau|chapeaux; m|le manteau|manteaux; f|la veste|vestes; f|la chemise|chemises; "
               "f|la chaussure|chaussures; f|l'assiette|assiettes; f|la tasse|tasses; "
               "f|la cuillère|cuillères; m|le couteau|couteaux; f|la fourchette|fourchettes; "
               "m|le tableau|tableaux; f|la carte|cartes; m|le cadeau|cadeaux; f|la valise|valises; "
               "m|l'ordinateur|ordinateurs; f|la fenêtre|fenêtres; f|la porte|portes; m|le cahier|cahiers; "
               "m|le crayon|crayons; f|la bougie|bougies; m|l'œuf|œufs; f|la tomate|tomates; "
               "f|la poire|poires; f|l'orange|oranges; f|la soupe|soupes; m|le fromage|fromages; "
               "f|la guitare|guitares; m|le piano|pianos; f|la couverture|couvertures; "
               "m|l'oreiller|oreillers; f|l'armoire|armoires; m|le réfrigérateur|réfrigérateurs; "
               "f|la pièce|pièces; m|le sac|sacs; m|le billet|billets; m|le paquet|paquets; "
               "m|le miroir|miroirs; m|le panier|paniers; m|le bol|bols; m|le journal|journaux; "
               "m|le parapluie|parapluies; f|la boîte|boîtes; m|le tapis|tapis; m|le château de sable|châteaux",
        verbs="achète|acheté|acheter; lit|lu|lire; cherche|cherché|chercher; trouve|trouvé|trouver; "
              "apporte|apporté|apporter; porte|porté|porter; ouvre|ouvert|ouvrir; ferme|fermé|fermer; "
              "lave|lavé|laver; répare|réparé|réparer; vend|vendu|vendre; oublie|oublié|oublier; "
              "prend|pris|prendre; voit|vu|voir; peint|peint|peindre; dessine|dessiné|dessiner; "
              "nettoie|nettoyé|nettoyer; cache|caché|cacher; perd|perdu|perdre; commande|commandé|commander; "
              "mange|mangé|manger; envoie|envoyé|envoyer; montre|montré|montrer; tient|tenu|tenir; "
              "jette|jeté|jeter; attrape|attrapé|attraper; remplit|rempli|remplir; vide|vidé|vider; "
              "pose|posé|poser; lève|levé|lever; prépare|préparé|préparer; choisit|choisi|choisir; "
              "reçoit|reçu|recevoir; écrit|écrit|écrire; emprunte|emprunté|emprunter; casse|cassé|casser; "
              "regarde|regardé|regarder; utilise|utilisé|utiliser; sèche|séché|sécher; décore|décoré|décorer",
        intransitive="dort|a|dormi; travaille|a|travaillé; chante|a|chanté; danse|a|dansé; rit|a|ri; "
                     "attend|a|attendu; nage|a|nagé; court|a|couru; marche|a|marché; "
                     "pleure|a|pleuré; étudie|a|étudié; déjeune|a|déjeuné",
        adjectives="grand/grande; petit/petite; beau/belle; nouveau/nouvelle; vieux/vieille; cher/chère; "
                   "léger/légère; lourd/lourde; chaud/chaude; froid/froide; propre; sale; plein/pleine; vide; "
                   "sec/sèche; mouillé/mouillée; délicieux/délicieuse; sucré/sucrée; joli/jolie; fragile; "
                   "cassé/cassée; bleu/bleue; vert/verte; rouge; blanc/blanche; noir/noire; gris/grise; jaune; "
                   "ancien/ancienne; moderne; étrange; célèbre; prêt/prête; fatigué/fatiguée; "
                   "heureux/heureuse; content/contente; malade; gentil/gentille; drôle; sérieux/sérieuse; "
                   "occupé/occupée; pressé/pressée; inquiet/inquiète; doux/douce; épais/épaisse; "
                   "génial/géniale; élégant/élégante; bruyant/bruyante; tranquille; abîmé/abîmée",
        intensifiers="très; assez; vraiment; trop; un peu; plutôt; tellement; déjà; bien",
        places="dans le jardin; dans la cuisine; à l'école; au bureau; à la gare; au marché; en ville; "
               "au supermarché; chez le boulanger; à la maison; dans le salon; à la cave; sur la plage; "
               "dans la forêt; au bord du lac; dans la rue; à l'hôpital; à la bibliothèque; à l'hôtel; "
               "au restaurant; au café; près du pont; derrière la maison; au cinéma; au musée; à l'aéroport; "
               "à la boulangerie; à la pharmacie; sous la table; près de la fenêtre; à côté de l'église",
        past="hier; hier soir; la semaine dernière; l'année dernière; avant-hier; ce matin; "
             "il y a deux jours; lundi; samedi",
        present="demain; aujourd'hui; ce soir; lundi; mardi; mercredi; jeudi; vendredi; samedi; dimanche; "
                "le week-end; chaque jour; en été; en hiver; au printemps; en automne; après le déjeuner; "
                "avant le dîner; à huit heures; plus tard; bientôt; la semaine prochaine; le matin; "
                "après-demain",
        numbers="deux; trois; quatre; cinq; six; sept; huit; neuf; dix; onze; douze; vingt; trente; cent; "
                "quatre-vingts",
        templates=[
            "{S} {V3} {O} {L}.", "{S} {V3} {O} {Th}.", "{Th}, {S} {V3} {O}.", "{S} a {Vpp} {O} {Tp}.",
            "{S} a {Vpp} {O} {L}.", "Est-ce que {S} a {Vpp} {O}?", "Où est-ce que {S} a {Vpp} {O}?",
            "Pourquoi est-ce que {S} {V3} {O} {Th}?", "Je voudrais {Vinf} {O} {Th}.",
            "Nous devons {Vinf} {O} {L}.", "Tu peux {Vinf} {O}?", "{Thing} {Pred}.", "{Thing} {L} {Pred}.",
            "{S} {I3} {L} {Th}.", "{S} {Iaux} {Ipp} {L} {Tp}.", "{S} a {Vpp} {num} {Pl}.",
            "Il y a {num} {Pl} {L}.", "{S} {V3} {O}, mais {S} {I3} {L}.", "{Thing} {Pred0}, et {thing} {Pred}.",
            "Je crois que {S} a {Vpp} {O}.", "Tu as {Vpp} {O} {Tp}?",
        ],
    ),
    "it": dict(
        copula="è",
        names="Giulia; Marco; Francesca; Luca; Chiara; Niccolò; Matteo; Sofia; Andrea; Elena; Giorgio; "
              "Martina; Lorenzo; Alessia; Davide; Federica; Tommaso; Beatrice; Nicolò; Gabriele; Mosè; Irene",
        people="il professore; la professoressa; il medico; il fornaio; il bambino; la bambina; il padre; "
               "la madre; il fratello; la sorella; il vicino; la vicina; lo studente; la studentessa; il cuoco; "
               "la cuoca; l'autista; il postino; la nonna; il nonno; lo zio; la zia; il cameriere; "
               "la cameriera; il poliziotto; l'artista; il contadino; il musicista; l'infermiera; l'ingegnere",
        things="m|il libro|libri; f|la lettera|lettere; f|la chiave|chiavi; m|il telefono|telefoni; "
               "f|la bicicletta|biciclette; f|la sedia|sedie; m|il tavolo|tavoli; f|la lampada|lampade; "
               "m|il bicchiere|bicchieri; f|la bottiglia|bottiglie; f|la torta|torte; f|la mela|mele; "
               "m|il pane|pani; m|il fiore|fiori; m|il pallone|palloni; f|la macchina|macchine; "
               "m|l'orologio|orologi; m|il cappello|cappelli; m|il cappotto|cappotti; f|la giacca|giacche; "
               "f|la camicia|camicie; f|la scarpa|scarpe; m|il piatto|piatti; f|la tazza|tazze; "
               "m|il cucchiaio|cucchiai; m|il coltello|coltelli; f|la forchetta|forchette; m|il quadro|quadri; "
               "f|la mappa|mappe; m|il regalo|regali; f|la valigia|valigie; m|il computer|computer; "
               "f|la finestra|finestre; f|la porta|porte; m|il quaderno|quaderni; f|la matita|matite; "
               "f|la candela|candele; m|l'uovo|uova; m|il pomodoro|pomodori; f|la pera|pere; "
               "f|l'arancia|arance; f|la zuppa|zuppe; m|il formaggio|formaggi; f|la chitarra|chitarre; "
               "m|il pianoforte|pianoforti; f|la coperta|coperte; m|il cuscino|cuscini; m|l'armadio|armadi; "
               "m|il frigorifero|frigoriferi; f|la moneta|monete; f|la borsa|borse; m|il biglietto|biglietti; "
               "m|il pacco|pacchi; m|lo specchio|specchi; m|il cestino|cestini; m|il giornale|giornali; "
               "m|l'ombrello|ombrelli; f|la scatola|scatole; m|il tappeto|tappeti; m|il caffè|caffè; "
               "m|lo zaino|zaini; m|il tè|tè",
        verbs="compra|comprato|comprare; legge|letto|leggere; cerca|cercato|cercare; trova|trovato|trovare; "
              "porta|portato|portare; apre|aperto|aprire; chiude|chiuso|chiudere; lava|lavato|lavare; "
              "ripara|riparato|riparare; vende|venduto|vendere; dimentica|dimenticato|dimenticare; "
              "prende|preso|prendere; vede|visto|vedere; dipinge|dipinto|dipingere; "
              "disegna|disegnato|disegnare; pulisce|pulito|pulire; nasconde|nascosto|nascondere; "
              "perde|perso|perdere; ordina|ordinato|ordinare; mangia|mangiato|mangiare; "
              "spedisce|spedito|spedire; mostra|mostrato|mostrare; tiene|tenuto|tenere; lancia|lanciato|lanciare; "
              "riempie|riempito|riempire; svuota|svuotato|svuotare; mette|messo|mettere; alza|alzato|alzare; "
              "prepara|preparato|preparare; sceglie|scelto|scegliere; riceve|ricevuto|ricevere; "
              "scrive|scritto|scrivere; rompe|rotto|rompere; guarda|guardato|guardare; usa|usato|usare; "
              "asciuga|asciugato|asciugare; decora|decorato|decorare; restituisce|restituito|restituire; "
              "regala|regalato|regalare",
        intransitive="dorme|ha|dormito; lavora|ha|lavorato; canta|ha|cantato; balla|ha|ballato; ride|ha|riso; "
                     "aspetta|ha|aspettato; nuota|ha|nuotato; corre|ha|corso; cammina|ha|camminato; "
                     "riposa|ha|riposato; piange|ha|pianto; studia|ha|studiato; pranza|ha|pranzato",
        adjectives="grande; piccolo/piccola; bello/bella; nuovo/nuova; vecchio/vecchia; caro/cara; "
                   "economico/economica; leggero/leggera; pesante; caldo/calda; freddo/fredda; pulito/pulita; "
                   "sporco/sporca; pieno/piena; vuoto/vuota; asciutto/asciutta; bagnato/bagnata; "
                   "delizioso/deliziosa; dolce; rotto/rotta; azzurro/azzurra; verde; rosso/rossa; "
                   "bianco/bianca; nero/nera; giallo/gialla; antico/antica; moderno/moderna; strano/strana; "
                   "famoso/famosa; pronto/pronta; stanco/stanca; felice; contento/contenta; malato/malata; "
                   "simpatico/simpatica; divertente; serio/seria; occupato/occupata; veloce; lento/lenta; "
                   "difficile; facile; utile; scuro/scura; tranquillo/tranquilla; rumoroso/rumorosa; "
                   "morbido/morbida; forte; debole; comodo/comoda",
        intensifiers="molto; piuttosto; troppo; un po'; davvero; così; abbastanza; più; già",
        places="nel parco; nel giardino; in cucina; a scuola; in ufficio; alla stazione; al mercato; in città; "
               "al supermercato; dal fornaio; a casa; in salotto; in cantina; sulla spiaggia; nel bosco; "
               "vicino al lago; per strada; all'ospedale; in biblioteca; in albergo; al ristorante; al bar; "
               "vicino al ponte; dietro la casa; al cinema; al museo; all'aeroporto; in farmacia; "
               "sotto il tavolo; accanto alla finestra; all'università; in città vecchia",
        past="ieri; ieri sera; la settimana scorsa; l'anno scorso; l'altro ieri; stamattina; due giorni fa; "
             "lunedì; venerdì",
        present="domani; oggi; stasera; lunedì; martedì; mercoledì; giovedì; venerdì; sabato; domenica; "
                "nel fine settimana; ogni giorno; d'estate; d'inverno; in primavera; in autunno; dopo pranzo; "
                "prima di cena; alle otto; più tardi; presto; la settimana prossima; di mattina; dopodomani",
        numbers="due; tre; quattro; cinque; sei; sette; otto; nove; dieci; undici; dodici; venti; trenta; "
                "cento; ventitré; trentatré",
        templates=[
            "{S} {V3} {O} {L}.", "{S} {V3} {O} {Th}.", "{Th} {S} {V3} {O}.", "{S} ha {Vpp} {O} {Tp}.",
            "{S} ha {Vpp} {O} {L}.", "{S} ha {Vpp} {O}?", "Dove ha {Vpp} {O} {S}?",
            "Perché {S} {V3} {O} {Th}?", "Vorrei {Vinf} {O} {Th}.", "Dobbiamo {Vinf} {O} {L}.",
            "Puoi {Vinf} {O}?", "{Thing} {Pred}.", "{Thing} {L} {Pred}.", "{S} {I3} {L} {Th}.",
            "{S} {Iaux} {Ipp} {L} {Tp}.", "{S} ha {Vpp} {num} {Pl}.", "Ci sono {num} {Pl} {L}.",
            "{S} {V3} {O}, ma {S} {I3} {L}.", "{Thing} {Pred0}, e {thing} {Pred}.",
            "Penso che {S} abbia {Vpp} {O}.", "Hai {Vpp} {O} {Tp}?",
        ],
    ),
    "sv": dict(
        copula="är",
        names="Anna; Erik; Åsa; Björn; Märta; Göran; Maja; Lars; Karin; Oskar; Elsa; Nils; Ingrid; Axel; "
              "Linnéa; Åke; Sigrid; Gösta; Ebba; Olle; Stina; Jöns",
        people="läraren; läkaren; bagaren; pojken; flickan; barnet; pappan; mamman; min bror; min syster; "
               "grannen; studenten; kocken; chauffören; brevbäraren; mormor; morfar; min farbror; min moster; "
               "servitören; servitrisen; polisen; konstnären; bonden; musikern; sjuksköterskan; ingenjören",
        things="c|boken|böcker; n|brevet|brev; c|nyckeln|nycklar; c|telefonen|telefoner; c|cykeln|cyklar; "
               "c|stolen|stolar; n|bordet|bord; c|lampan|lampor; n|glaset|glas; c|flaskan|flaskor; "
               "c|kakan|kakor; n|äpplet|äpplen; n|brödet|bröd; c|blomman|blommor; c|bollen|bollar; "
               "c|bilen|bilar; c|klockan|klockor; c|hatten|hattar; c|kappan|kappor; c|jackan|jackor; "
               "c|skjortan|skjortor; c|skon|skor; c|tallriken|tallrikar; c|koppen|koppar; c|skeden|skedar; "
               "c|kniven|knivar; c|gaffeln|gafflar; c|tavlan|tavlor; c|kartan|kartor; c|presenten|presenter; "
               "c|väskan|väskor; c|datorn|datorer; n|fönstret|fönster; c|dörren|dörrar; n|häftet|häften; "
               "c|pennan|pennor; n|ljuset|ljus; n|ägget|ägg; c|tomaten|tomater; n|päronet|päron; "
               "c|apelsinen|apelsiner; c|soppan|soppor; c|osten|ostar; c|gitarren|gitarrer; n|pianot|pianon; "
               "c|filten|filtar; c|kudden|kuddar; n|skåpet|skåp; n|kylskåpet|kylskåp; n|myntet|mynt; "
               "c|biljetten|biljetter; n|paketet|paket; c|spegeln|speglar; c|korgen|korgar; c|skålen|skålar; "
               "c|tidningen|tidningar; n|paraplyet|paraplyer; c|lådan|lådor; c|mattan|mattor; "
               "c|ryggsäcken|ryggsäckar; n|tåget|tåg",
        verbs="köper|köpt|köpa; läser|läst|läsa; söker|sökt|söka; hittar|hittat|hitta; hämtar|hämtat|hämta; "
              "bär|burit|bära; öppnar|öppnat|öppna; stänger|stängt|stänga; tvättar|tvättat|tvätta; "
              "lagar|lagat|laga; säljer|sålt|sälja; glömmer|glömt|glömma; tar|tagit|ta; ser|sett|se; "
              "målar|målat|måla; ritar|ritat|rita; gömmer|gömt|gömma; tappar|tappat|tappa; "
              "beställer|beställt|beställa; äter|ätit|äta; skickar|skickat|skicka; visar|visat|visa; "
              "håller|hållit|hålla; kastar|kastat|kasta; fångar|fångat|fånga; fyller|fyllt|fylla; "
              "tömmer|tömt|tömma; lägger|lagt|lägga; lyfter|lyft|lyfta; väljer|valt|välja; får|fått|få; "
              "bakar|bakat|baka; använder|använt|använda; torkar|torkat|torka; "
              "dekorerar|dekorerat|dekorera; byter|bytt|byta; lånar|lånat|låna; "
              "delar|delat|dela; packar|packat|packa; flyttar|flyttat|flytta",
        intransitive="sover|har|sovit; arbetar|har|arbetat; sjunger|har|sjungit; dansar|har|dansat; "
                     "skrattar|har|skrattat; väntar|har|väntat; simmar|har|simmat; springer|har|sprungit; "
                     "promenerar|har|promenerat; vilar|har|vilat; gråter|har|gråtit; studerar|har|studerat; "
                     "äter frukost|har|ätit frukost",
        adjectives="stor/stort; liten/litet; vacker/vackert; ny/nytt; gammal/gammalt; dyr/dyrt; billig/billigt; "
                   "lätt; tung/tungt; varm/varmt; kall/kallt; ren/rent; smutsig/smutsigt; full/fullt; tom/tomt; "
                   "torr/torrt; blöt/blött; god/gott; söt/sött; trasig/trasigt; blå/blått; grön/grönt; röd/rött; "
                   "vit/vitt; svart; gul/gult; modern/modernt; konstig/konstigt; berömd/berömt; "
                   "färdig/färdigt; trött; glad/glatt; nöjd/nöjt; sjuk/sjukt; snäll/snällt; rolig/roligt; "
                   "allvarlig/allvarligt; upptagen/upptaget; snabb/snabbt; långsam/långsamt; svår/svårt; "
                   "enkel/enkelt; användbar/användbart; mörk/mörkt; lugn/lugnt; mjuk/mjukt; stark/starkt; "
                   "svag/svagt; bekväm/bekvämt; gammaldags",
        intensifiers="mycket; ganska; för; lite; väldigt; så; riktigt; verkligen; inte så",
        places="i parken; i trädgården; i köket; i skolan; på kontoret; på stationen; på torget; i staden; "
               "i affären; hos bagaren; hemma; i vardagsrummet; i källaren; på stranden; i skogen; vid sjön; "
               "på gatan; på sjukhuset; på biblioteket; på hotellet; på restaurangen; på kaféet; vid bron; "
               "bakom huset; på bio; på museet; på flygplatsen; på apoteket; under bordet; "
               "bredvid fönstret; på landet",
        past="igår; igår kväll; förra veckan; förra året; i förrgår; i morse; för två dagar sedan; i söndags",
        present="imorgon; idag; ikväll; på måndag; på tisdag; på onsdag; på torsdag; på fredag; på lördag; "
                "på söndag; på helgen; varje dag; på sommaren; på vintern; på våren; på hösten; efter lunchen; "
                "före middagen; klockan åtta; senare; snart; nästa vecka; på morgonen; i övermorgon",
        numbers="två; tre; fyra; fem; sex; sju; åtta; nio; tio; elva; tolv; tjugo; trettio; hundra; fjorton",
        templates=[
            "{S} {V3} {O} {L}.", "{S} {V3} {O} {Th}.", "{Th} {V3} {S} {O}.", "{S} har {Vpp} {O} {Tp}.",
            "{S} har {Vpp} {O} {L}.", "Har {S} {Vpp} {O}?", "Var har {S} {Vpp} {O}?",
            "Varför {V3} {S} {O} {Th}?", "Jag vill {Vinf} {O} {Th}.", "Vi måste {Vinf} {O} {L}.",
            "Kan du {Vinf} {O}?", "{Thing} {Pred}.", "{Thing} {L} {Pred}.", "{S} {I3} {L} {Th}.",
            "{S} {Iaux} {Ipp} {L} {Tp}.", "{S} har {Vpp} {num} {Pl}.", "Det finns {num} {Pl} {L}.",
            "{S} {V3} {O}, men {S} {I3} {L}.", "{Thing} {Pred0}, och {thing} {Pred}.",
            "Jag tror att {S} har {Vpp} {O}.", "Har du {Vpp} {O} {Tp}?",
        ],
    ),
}


# --- the grammar that fills the templates ------------------------------------------------------------

def _items(text: str, sep: str | None = None) -> list[str]:
    return list(dict.fromkeys(" ".join(w.replace("_", " ").split()) for w in text.split(sep) if w.strip()))


def _en_plural(entry: str) -> tuple[str, str]:
    if "/" in entry:
        return tuple(entry.split("/"))  # type: ignore[return-value]
    if entry.endswith(("s", "x", "z", "ch", "sh")):
        return entry, entry + "es"
    if entry[-1] == "y" and entry[-2] not in "aeiou":
        return entry, entry[:-1] + "ies"
    return entry, entry + "s"


def _en_verb(entry: str) -> tuple[str, str, str, str, str]:
    """(base, 3rd-sg, past, participle, -ing) from "walk", "stop*" or "take/took/taken"."""
    double, parts = "*" in entry, entry.replace("*", "").split("/")
    base = parts[0]
    stem = base + base[-1] if double else base
    cons_y = base[-1] == "y" and base[-2] not in "aeiou"
    if base.endswith(("s", "x", "z", "ch", "sh", "o")):
        third = base + "es"
    else:
        third = base[:-1] + "ies" if cons_y else base + "s"
    if len(parts) == 3:
        past, part = parts[1], parts[2]
    elif double or not (base.endswith("e") or cons_y):
        past = part = stem + "ed"
    else:
        past = part = base + "d" if base.endswith("e") else base[:-1] + "ied"
    if double:
        ing = stem + "ing"
    elif base.endswith("ie"):
        ing = base[:-2] + "ying"
    elif base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        ing = base[:-1] + "ing"
    else:
        ing = base + "ing"
    return base, third, past, part, ing


@functools.cache
def _english() -> dict:
    return dict(
        names=_items(EN_NAMES), people=[_en_plural(w) for w in _items(EN_PEOPLE)],
        animals=[_en_plural(w) for w in _items(EN_ANIMALS)], things=[_en_plural(w) for w in _items(EN_THINGS)],
        mass=_items(EN_MASS), places=_items(EN_PLACES), adjectives=_items(EN_ADJECTIVES),
        adverbs=_items(EN_ADVERBS), verbs=[_en_verb(w) for w in _items(EN_VERBS)],
        intransitive=[_en_verb(w) for w in _items(EN_INTRANSITIVE)],
        Tp=_items(EN_TIME_PAST + "|" + EN_TIME_ANY, "|"), Tf=_items(EN_TIME_FUTURE + "|" + EN_TIME_ANY, "|"),
        Th=_items(EN_TIME_HABIT + "|" + EN_TIME_ANY, "|"),
    )


def _en_number(n: int) -> str:
    if n < 20:
        return EN_NUMBERS_UNITS[n]
    return EN_NUMBERS_TENS[n // 10] + (f"-{EN_NUMBERS_UNITS[n % 10]}" if n % 10 else "")


def _en_noun_phrase(rng: random.Random, nouns: list[tuple[str, str]], plural: bool, mass: list[str] = ()) -> str:
    g = _english()
    adj = f"{rng.choice(g['adjectives'])} " if rng.random() < 0.35 else ""
    if mass and rng.random() < 0.2:
        det = rng.choice(("the", "some", "my", "our", "their", "a lot of", "more", "enough"))
        return f"{det} {adj}{rng.choice(mass)}"
    if plural:
        det = _en_number(rng.randint(2, 12)) if rng.random() < 0.15 else rng.choice(
            ("the", "the", "some", "my", "our", "your", "their", "these", "those", "many", "a few"))
        return f"{det} {adj}{rng.choice(nouns)[1]}"
    det = rng.choice(("the", "the", "a", "my", "your", "his", "her", "our", "their", "this", "that"))
    return f"{det} {adj}{rng.choice(nouns)[0]}"


def _en_slot(name: str, rng: random.Random, verbs: dict[str, tuple[str, ...]]) -> str:
    g = _english()
    if name[0] in "VWI" and len(name) <= 2:  # V, V3, Vd, Vn, Vg (W*, I* alike)
        return verbs[name[0]]["03dng".index(name[1]) if len(name) == 2 else 0]
    if name in ("S", "P"):  # subjects: people (sometimes animals), names, pronouns
        r, people = rng.random(), g["people"] if rng.random() < 0.8 else g["animals"]
        if name == "S":
            return rng.choice(("he", "she")) if r < 0.12 else rng.choice(g["names"]) if r < 0.4 else \
                _en_noun_phrase(rng, people, plural=False)
        return rng.choice(("we", "you", "they")) if r < 0.25 else \
            f"{rng.choice(g['names'])} and {rng.choice(g['names'])}" if r < 0.35 else _en_noun_phrase(rng, people, True)
    if name == "O":
        return _en_noun_phrase(rng, g["things"], plural=rng.random() < 0.3, mass=g["mass"])
    if name == "L":
        r = rng.random()
        return rng.choice(EN_FIXED_PLACES) if r < 0.1 else f"{rng.choice(EN_PREPOSITIONS)} {rng.choice(g['places'])}"
    simple: dict[str, Callable[[], str]] = {
        "N": lambda: rng.choice(g["names"]), "H": lambda: rng.choice(g["people"])[0],
        "Hp": lambda: rng.choice(g["people"])[1], "thing": lambda: rng.choice(g["things"])[0],
        "Np": lambda: rng.choice(g["things"])[1], "place": lambda: rng.choice(g["places"]),
        "A": lambda: rng.choice(g["adjectives"]), "R": lambda: rng.choice(g["adverbs"]),
        "num": lambda: _en_number(rng.randint(2, 99)), "hour": lambda: _en_number(rng.randint(1, 12)),
        "Tp": lambda: rng.choice(g["Tp"]), "Tf": lambda: rng.choice(g["Tf"]), "Th": lambda: rng.choice(g["Th"]),
    }
    return simple[name]()


def _a_an(text: str) -> str:
    def fix(m: re.Match) -> str:
        w = m[2].lower()
        vowel = w[0] in "aeiou" and not w.startswith(("uni", "use", "usu", "eu", "one"))
        vowel = vowel or w.startswith(("hour", "honest", "heir"))
        return f"{m[1]}{'n' if vowel else ''} {m[2]}"
    return re.sub(r"\b([Aa]) (\w+)", fix, text)


def _english_sentence(rng: random.Random) -> str:
    g = _english()
    template = rng.choice(EN_TEMPLATES)
    verbs = {"V": rng.choice(g["verbs"]), "W": rng.choice(g["verbs"]), "I": rng.choice(g["intransitive"])}
    return _a_an(re.sub(r"\{(\w+)\}", lambda m: _en_slot(m[1], rng, verbs), template))


@functools.cache
def _foreign(language: str) -> dict:
    d = FOREIGN[language]
    out = {k: _items(v, ";") for k, v in d.items() if isinstance(v, str) and k != "copula"}
    for k in ("things", "verbs", "intransitive"):
        out[k] = [tuple(e.split("|")) for e in out[k]]
    return out | {"copula": d["copula"], "templates": d["templates"]}


def _foreign_sentence(language: str, rng: random.Random) -> str:
    g = _foreign(language)
    verb, intr = rng.choice(g["verbs"]), rng.choice(g["intransitive"])
    gender = ["m"]

    def predicate(with_intensifier: bool) -> str:
        adj = rng.choice(g["adjectives"])
        copula = ("está" if adj.startswith("*") else "es") if language == "es" else g["copula"]
        forms = adj.lstrip("*").split("/")
        word = forms[-1] if gender[0] in ("f", "n") else forms[0]
        return f"{copula} {rng.choice(g['intensifiers']) + ' ' if with_intensifier else ''}{word}"

    def thing() -> str:
        gender[0], noun, _ = rng.choice(g["things"])
        return noun

    def obj() -> str:
        noun = rng.choice(g["things"])[1]
        return re.sub(r"^der ", "den ", noun) if language == "de" else noun  # German accusative

    slots: dict[str, Callable[[], str]] = {
        "S": lambda: rng.choice(g["names"] if rng.random() < 0.4 else g["people"]), "O": obj,
        "Thing": thing, "thing": thing, "Pred": lambda: predicate(True), "Pred0": lambda: predicate(False),
        "Pl": lambda: rng.choice(g["things"])[2], "num": lambda: rng.choice(g["numbers"]),
        "L": lambda: rng.choice(g["places"]), "Tp": lambda: rng.choice(g["past"]),
        "Th": lambda: rng.choice(g["present"]), "V3": lambda: verb[0], "Vpp": lambda: verb[1],
        "Vinf": lambda: verb[2], "I3": lambda: intr[0], "Iaux": lambda: intr[1], "Ipp": lambda: intr[2],
    }
    text = re.sub(r"\{(\w+)\}", lambda m: slots[m[1]](), rng.choice(g["templates"]))
    if language == "fr":  # elision: que + vowel -> qu'
        text = re.sub(r"\bque (?=[aeiouyéèêàâîôûœ])", "qu'", text, flags=re.IGNORECASE)
    return text


def make_sentence(language: str, rng: random.Random) -> str:
    """One sentence in ``language`` ("en" or a key of FOREIGN), drawn with ``rng``; first letter capitalised."""
    text = _english_sentence(rng) if language == "en" else _foreign_sentence(language, rng)
    i = next(i for i, c in enumerate(text) if c.isalpha())
    return text[:i] + text[i].upper() + text[i + 1:]
